"""A wrong declaration is refused before anything starts: exit 2, one line naming the YAML path."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from simclr_sweep.cli import main

REPO = Path(__file__).resolve().parents[2]
QUICKSTART = REPO / "search_spaces" / "quickstart.yaml"


def _study(**changes):
    data = yaml.safe_load(QUICKSTART.read_text())
    for dotted, value in changes.items():
        keys = dotted.split("__")
        node = data
        for key in keys[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[keys[-1]]
        else:
            node[keys[-1]] = value
    return data


_DELETE = object()


def _write(tmp_path: Path, data, name="study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


def _validate(capsys, path) -> tuple[int, str, str]:
    code = main(["validate", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


CASES = {
    "unknown top-level key": (
        lambda: {**_study(), "metrc": "knn_top1"},
        "metrc: unknown key; did you mean 'metric'?",
    ),
    "unknown key inside a parameter": (
        lambda: _study(parameters__temperature={"distrbution": "log_uniform", "min": 0.1, "max": 1.0}),
        "parameters.temperature.distrbution: unknown key; did you mean 'distribution'?",
    ),
    "unknown training option": (
        lambda: _study(parameters__tempreature={"values": [0.1]}),
        "parameters.tempreature: unknown training option; did you mean 'temperature'?",
    ),
    "unknown fixed option": (
        lambda: _study(fixed__epocs=3),
        "fixed.epocs: unknown training option; did you mean 'epochs'?",
    ),
    "wrong type": (
        lambda: _study(trials="ten"),
        "trials: must be a whole number (got string 'ten')",
    ),
    "inverted range": (
        lambda: _study(parameters__temperature={"distribution": "uniform", "min": 0.9, "max": 0.1}),
        "parameters.temperature: min must be <= max (got min 0.9, max 0.1)",
    ),
    "empty range": (
        lambda: _study(parameters__temperature={"distribution": "uniform", "min": 0.5, "max": 0.5}),
        "parameters.temperature: min and max are both 0.5: an empty range (put the value in fixed instead)",
    ),
    "empty values": (
        lambda: _study(parameters__similarity={"values": []}),
        "parameters.similarity.values: is empty; list at least one value",
    ),
    "log range including 0": (
        lambda: _study(parameters__temperature={"distribution": "log_uniform", "min": 0, "max": 1.0}),
        "parameters.temperature.min: must be > 0 for log_uniform (got 0)",
    ),
    "negative log range": (
        lambda: _study(parameters__temperature={"distribution": "log_uniform", "min": -0.1, "max": 1.0}),
        "parameters.temperature.min: must be > 0 for log_uniform (got -0.1)",
    ),
    "unknown method": (
        lambda: _study(method="tpee"),
        "method: must be one of tpe, random, grid, cmaes, gp, qmc (got string 'tpee'); did you mean 'tpe'?",
    ),
    "unknown early stopping": (
        lambda: _study(early_stopping={"type": "ashaa"}),
        "early_stopping.type: must be one of asha, hyperband, median, none (got string 'ashaa'); did you mean 'asha'?",
    ),
    "misspelt augmentation parameter": (
        lambda: _study(**{"fixed__color_jitter.strenght": 0.5}),
        "fixed.color_jitter.strenght: unknown training option; did you mean 'color_jitter.strength'?",
    ),
    "both crop scale forms": (
        lambda: _study(**{"fixed__crop.scale": [0.2, 1.0]}),  # the quickstart fixes crop.min_scale
        "fixed.crop.min_scale: give crop.scale or crop.min_scale, not both",
    ),
    "unknown baseline": (
        lambda: _study(baselines=["random_init", "pcaa"]),
        "baselines[1]: must be one of random_init, pca (got string 'pcaa'); did you mean 'pca'?",
    ),
    "unknown logger": (
        lambda: _study(loggers=["tensorbord"]),
        "loggers[0]: must be one of tensorboard, mlflow, wandb (got string 'tensorbord'); did you mean 'tensorboard'?",
    ),
    "repeated logger": (
        lambda: _study(loggers=["wandb", "wandb"]),
        "loggers: names must not repeat (got wandb, wandb)",
    ),
    "too few embeddings for a t-SNE": (
        lambda: _study(embeddings=5),
        "embeddings: must be 0 (none) or at least 10 test images for a t-SNE (got 5)",
    ),
    "stepped log range": (
        lambda: _study(parameters__temperature={"distribution": "q_log_uniform", "min": 0.1, "max": 1.0, "q": 0.1}),
        "parameters.temperature.distribution: must be one of uniform, log_uniform, int_uniform, q_uniform "
        "(got string 'q_log_uniform'); did you mean 'log_uniform'?",
    ),
    "metric not a metric": (
        lambda: _study(metric={"name": "accuracy", "goal": "maximize"}),
        "metric.name: must be one of epoch, loss, knn_top1, linear_top1, linear_r2, lr, images_per_s, "
        "epoch_time_s, gpu_mem_gb (got string 'accuracy')",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_declaration_gives_one_exact_line(case, tmp_path, capsys):
    make, expected = CASES[case]
    path = _write(tmp_path, make())
    code, out, err = _validate(capsys, path)
    assert code == 2
    assert out == ""
    assert err == f"error: {expected}\n"


@pytest.mark.parametrize(
    "case, make, path_prefix, bad",
    [
        ("unknown similarity", lambda: _study(parameters__similarity={"values": ["cosine", "cosin"]}),
         "parameters.similarity.values[1]: ", "cosin"),
        ("unknown augmentation", lambda: _study(parameters__augmentations={"subset_of": ["crop", "sharpen"]}),
         "parameters.augmentations.subset_of[1]: ", "sharpen"),
        ("bad fixed value", lambda: _study(fixed__backbone="resnet9000"), "fixed.backbone: ", "resnet9000"),
        ("bad augmentation parameter", lambda: _study(**{"fixed__blur.sigma": [2.0, 0.5]}),
         "fixed.blur.sigma: ", "low <= high"),
        ("unknown recipe", lambda: _study(fixed__recipe="tf2"), "fixed.recipe: ", "must be one of torch, tf (got 'tf2')"),
        ("bad searched augmentation parameter", lambda: _study(**{"parameters__flip.p": {"values": [0.5, 1.5]}}),
         "parameters.flip.p.values[1]: ", "must be <= 1"),
    ],
)
def test_values_the_trainer_refuses_are_reported_at_their_yaml_path(case, make, path_prefix, bad, tmp_path, capsys):
    code, out, err = _validate(capsys, _write(tmp_path, make()))
    assert code == 2
    assert err.startswith(f"error: {path_prefix}") and bad in err
    assert err.count("\n") == 1


def test_a_parameter_name_that_is_not_a_string_is_reported_under_parameters(tmp_path, capsys):
    path = _write(tmp_path, yaml.safe_dump({**_study(), "parameters": {3: {"values": [1, 2]}}}))
    code, out, err = _validate(capsys, path)
    assert code == 2
    assert err.startswith("error: parameters.3: unknown training option; expected one of dataset, ")
    assert "augmentation_params" not in err and err.count("\n") == 1


def test_missing_file(tmp_path, capsys):
    code, _, err = _validate(capsys, tmp_path / "nope.yaml")
    assert code == 2
    assert err == f"error: {tmp_path / 'nope.yaml'}: no such file\n"


def test_file_that_is_not_yaml(tmp_path, capsys):
    path = _write(tmp_path, "name: x\nmetric: [unclosed\n")
    code, _, err = _validate(capsys, path)
    assert code == 2
    assert err.startswith(f"error: {path}: not valid YAML at line 3, column 1")
    assert err.count("\n") == 1


def test_yaml_that_is_not_a_mapping(tmp_path, capsys):
    path = _write(tmp_path, "- name: x\n- trials: 3\n")
    code, _, err = _validate(capsys, path)
    assert code == 2
    assert err == (f"error: {path}: a study must be a YAML mapping of keys such as name, metric, "
                   "parameters (got a list)\n")


def test_quickstart_is_valid(capsys):
    code, out, err = _validate(capsys, QUICKSTART)
    assert code == 0, err
    assert out.startswith("ok: quickstart: 10 trials by tpe over temperature, similarity, augmentations")


def test_recipe_tf_under_fixed_validates_with_a_detail_overridden(tmp_path, capsys):
    code, out, err = _validate(capsys, _write(tmp_path, _study(fixed__recipe="tf", fixed__head_init="torch")))
    assert (code, err) == (0, "")
    assert out.startswith("ok: quickstart: 10 trials")


def test_cli_process_refuses_bad_run_without_traceback_and_writes_nothing(tmp_path):
    path = _write(tmp_path, _study(parameters__temperature={"distribution": "log_uniform", "min": -0.1, "max": 1.0}))
    storage = tmp_path / "storage"
    proc = subprocess.run(
        [sys.executable, "-m", "simclr_sweep", "run", str(path), "--storage", str(storage)],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr == "error: parameters.temperature.min: must be > 0 for log_uniform (got -0.1)\n"
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not storage.exists()


@pytest.mark.parametrize("content", [None, "a: [b\n", "just a string\n"])
def test_cli_process_refuses_unreadable_files(tmp_path, content):
    path = tmp_path / "s.yaml"
    if content is not None:
        path.write_text(content)
    proc = subprocess.run([sys.executable, "-m", "simclr_sweep", "validate", str(path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {path}: ") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_baselines_and_embeddings_are_one_line_each():
    from simclr_sweep.study import parse_study

    study = parse_study(_study(baselines=["random_init", "pca"], embeddings=True))
    assert study.baselines == ("random_init", "pca") and study.embeddings == 500
    plain = parse_study({k: v for k, v in _study().items() if k not in ("baselines", "embeddings")})
    assert plain.baselines == () and plain.embeddings == 0


def test_a_logger_whose_extra_is_missing_is_refused_with_the_pip_command(tmp_path, capsys, monkeypatch):
    from dataclasses import replace

    from simclr_sweep.loggers import LOGGERS

    monkeypatch.setitem(LOGGERS, "mlflow", replace(LOGGERS["mlflow"], module="simclr_sweep_no_such_module"))
    code, out, err = _validate(capsys, _write(tmp_path, _study(loggers=["tensorboard", "mlflow"])))
    assert code == 2 and out == ""
    assert err == "error: loggers[1]: mlflow is not installed; pip install 'simclr-sweep[mlflow]'\n"


def test_loggers_are_kept_in_the_order_declared():
    from simclr_sweep.study import parse_study

    assert parse_study(_study(loggers=["wandb", "tensorboard"])).loggers == ("wandb", "tensorboard")
    assert parse_study(_study(loggers="mlflow")).loggers == ("mlflow",)
    assert parse_study(_study()).loggers == ()


def _with_yaml_12_numbers(tmp_path: Path) -> Path:
    """The quickstart with numbers written as YAML 1.2 reads them (YAML 1.1 reads `1e-3` as a string)."""
    text = QUICKSTART.read_text().replace("  lr: 0.002\n", "  lr: 1e-3\n  weight_decay: 5E-4\n")
    text = text.replace("  temperature: {distribution: log_uniform, min: 0.1, max: 1.0}",
                        "  temperature: {values: [.5, 1e-1]}")
    return _write(tmp_path, text + "time_budget: 1.0e3\n")


def test_numbers_as_yaml_1_2_reads_them_are_numbers_at_validate(tmp_path, capsys):
    from simclr_sweep.study import load_study

    path = _with_yaml_12_numbers(tmp_path)
    assert "lr: 1e-3" in path.read_text()
    code, out, err = _validate(capsys, path)
    assert (code, err) == (0, ""), err
    study = load_study(path)
    assert study.fixed["lr"] == 0.001 and study.fixed["weight_decay"] == 0.0005
    assert study.parameters["temperature"].values == (0.5, 0.1)
    assert study.time_budget_s == 1000.0


def test_a_frozen_study_yaml_with_1e_3_reads_as_0_001_on_resume(tmp_path):
    from simclr_sweep.runner import load_study_dir

    study_dir = tmp_path / "quickstart"
    study_dir.mkdir()
    _with_yaml_12_numbers(tmp_path).rename(study_dir / "study.yaml")
    assert load_study_dir(study_dir).fixed["lr"] == 0.001  # the child process reads it through read_yaml


def test_a_train_config_from_a_yaml_file_reads_1e_3_as_0_001(tmp_path):
    from trainers import TrainConfig
    from trainers.checks import read_yaml

    path = _write(tmp_path, "dataset: shapes\nlr: 1e-3\nweight_decay: 5E-4\n", name="train.yaml")
    cfg = TrainConfig.from_dict(read_yaml(path))
    assert cfg.lr == 0.001 and cfg.weight_decay == 0.0005
