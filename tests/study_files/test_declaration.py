"""A study folder's frozen declaration, and the one "not a study directory" error."""
import pytest

from study_files import atomic
from study_files.declaration import Declaration, claim_study, not_a_study, read_declaration
from study_files.errors import StudyFilesError


def test_a_folder_without_study_yaml_is_not_a_study(tmp_path):
    with pytest.raises(StudyFilesError) as err:
        read_declaration(tmp_path)
    assert str(err.value) == (f"{tmp_path}: not a study directory (no study.yaml); "
                              "give the folder `simclr-sweep run` created")
    assert str(not_a_study("s3://b/x", "study.yaml", "tables/trials.parquet")) == (
        "s3://b/x: not a study directory (no study.yaml, no tables/trials.parquet); "
        "give the folder `simclr-sweep run` created")


@pytest.mark.parametrize("raw, metric, maximize, method", [
    ({"metric": {"name": "loss"}, "method": "grid"}, "loss", False, "grid"),
    ({"metric": "knn_top1"}, "knn_top1", True, "unknown"),
    ({"metric": {"name": "linear_r2", "goal": "minimize"}}, "linear_r2", False, "unknown"),
    ({}, "knn_top1", True, "unknown"),
])
def test_metric_goal_and_method_follow_the_study_language_defaults(raw, metric, maximize, method):
    declaration = Declaration(raw)
    assert (declaration.metric, declaration.maximize, declaration.method) == (metric, maximize, method)


def test_claim_writes_the_declaration_and_refuses_a_used_folder(tmp_path):
    study_dir = tmp_path / "s"
    claim_study(study_dir, "name: s\nmetric: loss\n")
    assert read_declaration(study_dir).metric == "loss"
    with pytest.raises(StudyFilesError, match="already holds a study; continue it with `simclr-sweep resume"):
        claim_study(study_dir, "name: s\n")


def test_an_atomic_write_leaves_the_old_file_when_it_fails(tmp_path):
    target = atomic.write_text(tmp_path / "a" / "f.txt", "old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert target.read_text() == "old" and [p.name for p in target.parent.iterdir()] == ["f.txt"]


def test_a_hand_written_declaration_reads_1e_3_as_the_number_study_files_validate():
    declaration = Declaration.parse("name: s\nfixed: {lr: 1e-3, weight_decay: 1.0e-6, label: 1e3x}\n")
    assert declaration.raw["fixed"] == {"lr": 0.001, "weight_decay": 1e-6, "label": "1e3x"}
