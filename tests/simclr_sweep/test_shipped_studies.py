"""The studies that ship in search_spaces/: every one is a valid declaration, named after its file,
with a grid as large as it says, a leading comment that tells a user what to compare with, and
settings that make sense on one 8-GPU node."""
import itertools
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simclr_sweep.study import load_study

REPO = Path(__file__).resolve().parents[2]
SPACES_DIR = REPO / "search_spaces"
SPACES = sorted(SPACES_DIR.glob("*.yaml"))
# The paper's ablations, the Spirograph study and the tuning study (issue 8, "Studies that ship").
PAPER_STUDIES = (
    "cifar10-augmentation-pairs",
    "cifar10-color-strength",
    "cifar10-temperature-batch",
    "cifar10-similarity",
    "cifar10-projection-head",
    "cifar10-loss",
    "cifar10-training-length",
    "spirograph-invariance",
    "cifar10-tpe-tuning",
)
# The paper's qualitative findings in miniature, on the CPU (issue 17; benchmarks/findings.py runs them).
MINIATURES = ("shapes-crop-colour", "shapes-projection-head", "shapes-loss", "shapes-colour-strength")
MINIATURE_PATHS = [SPACES_DIR / f"{name}.yaml" for name in MINIATURES]
SHIPPED_PAPER = [p for p in SPACES if p.stem != "quickstart" and p.stem not in MINIATURES]
CLASSIFICATION_METRICS = ("knn_top1", "linear_top1")
REGRESSION_DATASETS = ("spirograph",)


def _raw(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _leading_comment(path: Path) -> list[str]:
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return lines


def _expected_choices(spec: dict) -> int:
    """How many values a grid visits for one parameter, counted from the YAML itself."""
    if "values" in spec:
        return len(spec["values"])
    if "pairs_of" in spec:
        n = len(spec["pairs_of"])
        return n + math.comb(n, 2)
    if "subset_of" in spec:
        n = len(spec["subset_of"])
        low, high = spec.get("min_size", 1), spec.get("max_size", n)
        return sum(math.comb(n, k) for k in range(low, high + 1))
    if spec.get("distribution") == "int_uniform":
        return len(range(spec["min"], spec["max"] + 1, spec.get("q", 1)))
    raise AssertionError(f"not a grid parameter: {spec}")


def test_the_studies_of_issue_8_ship():
    assert {p.stem for p in SPACES} >= set(PAPER_STUDIES) | {"quickstart"}


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_loads_and_is_named_after_its_file(path):
    study = load_study(path)
    assert study.name == path.stem


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_grid_trial_count_is_the_grid_size(path):
    study, raw = load_study(path), _raw(path)
    if study.method != "grid":
        pytest.skip(f"{study.method} study")
    expected = math.prod(_expected_choices(spec) for spec in raw["parameters"].values())
    assert study.grid_size() == expected
    assert study.trials == expected
    assert study.num_trials == expected * study.seeds


def test_grid_sizes_of_the_paper_studies():
    # The figures the comments quote: a change of grid must change its cost estimate too.
    sizes = {"cifar10-augmentation-pairs": 7 + 21, "cifar10-color-strength": 2 * 4 * 2,
             "cifar10-temperature-batch": 5 * 5, "cifar10-similarity": 6 * 2,
             "cifar10-projection-head": 3 * 4, "cifar10-loss": 3 * 3,
             "cifar10-training-length": 4 * 5, "spirograph-invariance": 2 ** 6 - 1}
    assert {name: load_study(SPACES_DIR / f"{name}.yaml").trials for name in sizes} == sizes


def test_pairs_are_every_single_and_every_pair():
    study = load_study(SPACES_DIR / "cifar10-augmentation-pairs.yaml")
    names = sorted(_raw(SPACES_DIR / "cifar10-augmentation-pairs.yaml")["parameters"]["augmentations"]["pairs_of"])
    expected = {",".join(c) for k in (1, 2) for c in itertools.combinations(names, k)}
    assert set(study.parameters["augmentations"].values) == expected


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_starts_with_a_comment_block(path):
    comment = _leading_comment(path)
    assert len(comment) >= 3, f"{path.name} must open with a comment block saying what it asks"
    assert comment[0].startswith(f"# {path.stem}") or path.stem == "quickstart"


@pytest.mark.parametrize("path", SHIPPED_PAPER, ids=[p.stem for p in SHIPPED_PAPER])
def test_comment_says_what_was_found_and_what_it_costs(path):
    text = "\n".join(_leading_comment(path))
    assert re.search(r"\b(Figure|Table|Appendix) [A-Z]?\.?\d", text) or "Foster" in text, \
        f"{path.name}: name the figure or table to compare with"
    assert "GPU-hours" in text, f"{path.name}: give a GPU-hours estimate"
    study = load_study(path)
    # The quoted trial count is the real one.
    assert f"{study.num_trials} trials" in text or f"{study.trials} trials" in text


@pytest.mark.parametrize("path", SHIPPED_PAPER, ids=[p.stem for p in SHIPPED_PAPER])
def test_fits_one_8_gpu_node(path):
    study = load_study(path)
    assert study.gpu > 0 and study.workers_per_trial == 1
    assert study.max_concurrent * study.gpu <= 8
    assert study.cpu == 4


@pytest.mark.parametrize("path", [p for p in SHIPPED_PAPER if p.stem.startswith("cifar10-")],
                         ids=[p.stem for p in SHIPPED_PAPER if p.stem.startswith("cifar10-")])
def test_cifar10_studies_use_resnet18_with_the_cifar_stem(path):
    fixed = load_study(path).fixed
    assert fixed["dataset"] == "cifar10" and fixed["backbone"] == "resnet18" and fixed["stem"] == "cifar"
    assert fixed["data_root"] == "./data" and fixed["download"] is True


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_metric_fits_the_data_set(path):
    study = load_study(path)
    if study.fixed.get("dataset") in REGRESSION_DATASETS:
        assert study.metric == "linear_r2" and study.fixed.get("linear_eval") is True
    else:
        assert study.metric in CLASSIFICATION_METRICS
    assert study.goal == "maximize"


@pytest.mark.parametrize("path", SPACES, ids=[p.stem for p in SPACES])
def test_early_stopping_compares_trials_of_one_length_at_evaluated_epochs(path):
    study = load_study(path)
    es = study.early_stopping
    if es.type == "none":
        return
    assert "epochs" not in study.parameters, "a scheduler cannot stop trials whose length is the variable"
    eval_every = study.fixed.get("eval_every", 1)
    rungs, rung = [], es.grace_period
    while rung < study.epochs:
        rungs.append(rung)
        rung *= es.reduction_factor
    assert rungs, "the grace period must fall before the last epoch"
    if eval_every > 0:
        assert all(r % eval_every == 0 for r in rungs), f"rungs {rungs} fall between evaluations"


def test_seeded_ablations_repeat_and_tuning_is_reproducible():
    repeated = ("cifar10-augmentation-pairs", "cifar10-color-strength", "cifar10-similarity", "cifar10-loss")
    assert all(load_study(SPACES_DIR / f"{name}.yaml").seeds == 3 for name in repeated)
    tuning = load_study(SPACES_DIR / "cifar10-tpe-tuning.yaml")
    assert tuning.method == "tpe" and tuning.sampler_seed is not None
    assert {p.kind for p in tuning.parameters.values()} == {"log_uniform", "values"}


@pytest.mark.parametrize("path", MINIATURE_PATHS, ids=MINIATURES)
def test_a_miniature_opens_with_its_question_the_paper_s_finding_and_its_command(path):
    text = "\n".join(_leading_comment(path))
    assert re.search(r"\b(Figure|Table) \d", text) and "finding" in text
    assert f"{load_study(path).num_trials} trials" in text
    assert f"simclr-sweep run search_spaces/{path.name}" in text


@pytest.mark.parametrize("path", MINIATURE_PATHS, ids=MINIATURES)
def test_a_miniature_is_a_seeded_grid_on_generated_data_for_two_cpu_cores(path):
    study = load_study(path)
    assert study.method == "grid" and study.seeds >= 3 and study.early_stopping.type == "none"
    assert study.gpu == 0 and study.max_concurrent * study.cpu <= 2
    assert study.fixed["dataset"] == "shapes" and study.fixed["backbone"] == "convnet"


@pytest.mark.parametrize("name", ["cifar10-augmentation-pairs", "cifar10-tpe-tuning"])
def test_cli_validates_a_shipped_study(name):
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "validate", str(SPACES_DIR / f"{name}.yaml")],
                          capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    study = load_study(SPACES_DIR / f"{name}.yaml")
    assert proc.stdout.startswith(f"ok: {name}: {study.trials} trials")
    assert "Traceback" not in proc.stderr
