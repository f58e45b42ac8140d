"""The study language's `finetune:` key: what it accepts, and one line at its YAML path for what it refuses."""
from pathlib import Path

import pytest
import yaml

from simclr_sweep.cli import main
from simclr_sweep.study import Finetune, Segmentation, parse_study
from trainers.checks import ConfigError

QUICKSTART = Path(__file__).resolve().parents[2] / "search_spaces" / "quickstart.yaml"


def _study(finetune):
    return {**yaml.safe_load(QUICKSTART.read_text()), "finetune": finetune}


def test_labels_and_options_are_read(tmp_path):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("a.png,b.png\n")
    study = parse_study(_study({"labels": [0.01, 0.1], "epochs": 5, "lr": 0.1, "batch_size": 64,
                                "segmentation": {"file_list": str(pairs), "num_classes": 3}}))
    assert study.finetune == Finetune(labels=(0.01, 0.1), epochs=5, lr=0.1, batch_size=64,
                                      segmentation=Segmentation(file_list=str(pairs.resolve()), num_classes=3))
    assert parse_study(_study({"labels": 1})).finetune == Finetune(labels=(1.0,))
    plain = yaml.safe_load(QUICKSTART.read_text())
    assert parse_study(plain).finetune is None


@pytest.mark.parametrize("finetune, message", [
    ({"labels": [0.1, 2]}, "finetune.labels[1]: must be a fraction in (0, 1], e.g. 0.01 or 0.1 (got 2)"),
    ({"labels": [0.1, "all"]}, "finetune.labels[1]: must be a number (got string 'all')"),
    ({"labels": [0.1, 0.1]}, "finetune.labels: fractions must not repeat (got 0.1, 0.1)"),
    ({"labels": [0.1], "epochs": 0}, "finetune.epochs: must be >= 1 (got 0)"),
    ({"labels": [0.1], "lr": -1}, "finetune.lr: must be > 0 (got -1)"),
    ({"labels": [0.1], "lables": 2}, "finetune.lables: unknown key; did you mean 'labels'?"),
    ({}, "finetune: give labels (e.g. [0.01, 0.1]) or segmentation: {file_list: pairs.txt}"),
    ([0.1], "finetune: must be a mapping (got a list)"),
    ({"segmentation": {"num_classes": 2}}, "finetune.segmentation.file_list: missing; a file of `image,labelmap` lines"),
    ({"segmentation": {"file_list": "/no/pairs.txt"}},
     "finetune.segmentation.file_list: no such file: /no/pairs.txt (a relative path is read from the folder "
     "simclr-sweep runs in)"),
])
def test_a_bad_finetune_is_one_line_at_its_path(finetune, message, tmp_path, capsys):
    with pytest.raises(ConfigError) as caught:
        parse_study(_study(finetune))
    assert str(caught.value) == message
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(_study(finetune)))
    assert main(["validate", str(path)]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
