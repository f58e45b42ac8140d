"""`simclr-sweep status` prints parameter values and ids from the tables escaped: no control sequence
from a trial reaches the user's terminal."""
import os
import subprocess
import sys
from pathlib import Path

from study_files.schema import PARAM_PREFIX
from study_files.tables import StudyTables

sys.path.insert(0, str(Path(__file__).parents[1] / "reports"))
from synthetic_study import make_study  # noqa: E402


def test_status_escapes_control_sequences_in_parameter_values(tmp_path):
    study = make_study(tmp_path / "evil", configs=4, seeds=1, epochs=3)
    tables = StudyTables(study)
    trials = tables.read_trials()
    column = f"{PARAM_PREFIX}augmentations"
    trials[column] = [f"crop\x1b[2J\x1b]0;owned\x07{i}" for i in range(len(trials))]
    tables.upsert_trials(trials.to_dict("records"))
    result = subprocess.run([sys.executable, "-m", "simclr_sweep", "status", str(study)], capture_output=True,
                            text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    assert "crop\\x1b[2J\\x1b]0;owned\\x07" in result.stdout


def test_status_counts_a_grid_from_its_parameters_and_says_when_the_declaration_is_empty(tmp_path):
    import yaml

    from simclr_sweep.status import study_status

    study = make_study(tmp_path / "grid", configs=4, seeds=1, epochs=3, name="grid")
    declared = yaml.safe_load((study / "study.yaml").read_text())
    del declared["trials"]
    declared.update(method="grid", seeds=3, parameters={"temperature": {"values": [0.1, 0.5]},
                                                         "augmentations": {"subset_of": ["crop", "flip"]}})
    (study / "study.yaml").write_text(yaml.safe_dump(declared))
    assert study_status(study).splitlines()[0] == f"study grid (grid, 18 trials declared) in {study}"
    (study / "study.yaml").write_text("")
    assert study_status(study).splitlines()[0] == f"study grid (study.yaml is empty) in {study}"
