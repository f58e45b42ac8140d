"""The driver under real conditions, met as a user meets them: the CLI in a child process.

A second driver on a running study, Ctrl-C (once, twice), a Ray cluster already running on the
machine, a Ray that cannot start, names that cannot be folders, control sequences in a trial's text,
and storage or study files the machine refuses or that were damaged.
"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from processes import kill_tree
from study_files.schema import PARAM_PREFIX
from study_files.tables import StudyTables

GRID = {
    "name": "held",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "grid",
    "max_concurrent": 1,
    "resources": {"cpu": 1},
    "early_stopping": {"type": "none"},
    "fixed": {"dataset": "shapes", "dataset_size": 256, "backbone": "convnet", "epochs": 3,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {"temperature": {"values": [0.2, 0.5, 0.7]}},
}
ONE = {**GRID, "name": "one", "fixed": {**GRID["fixed"], "dataset_size": 128, "epochs": 1}, "parameters": {"temperature": {"values": [0.5]}}}
TERMINAL = {"completed", "early_stopped", "diverged", "failed"}


def _env(**extra) -> dict:
    env = {**os.environ, "RAY_ADDRESS": "", "PYTHONPATH": os.getcwd(), **extra}
    return env


def _cli(*args, cwd, env=None, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "simclr_sweep", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or _env(), timeout=timeout)


def _popen(*args, cwd, env=None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "simclr_sweep", *map(str, args)], cwd=cwd, env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """The stderr of a refused command: one `error:` line, no traceback."""
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def _trials(study_dir: Path) -> pd.DataFrame:
    if not (study_dir / "tables" / "trials.parquet").exists():
        return pd.DataFrame(columns=["trial_id", "status", f"{PARAM_PREFIX}temperature"])
    return StudyTables(study_dir).read_trials()


def _wait_for(proc: subprocess.Popen, ready, what: str, limit_s: float = 300) -> None:
    deadline = time.time() + limit_s
    while time.time() < deadline:
        if ready():
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    pytest.fail(f"the driver never reached: {what}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write(tmp: Path, declaration: dict) -> Path:
    path = tmp / f"{declaration['name']}.yaml"
    path.write_text(yaml.safe_dump(declaration))
    return path


@pytest.fixture(scope="module")
def held_study(tmp_path_factory):
    """A grid run: refused a second driver while it runs, interrupted by Ctrl-C, then resumed twice (the
    first resume stopped by two Ctrl-C at once). Returns what each step gave."""
    tmp = tmp_path_factory.mktemp("held")
    space = _write(tmp, GRID)
    study_dir = tmp / "studies" / "held"
    seen = {}
    run = _popen("run", space, "--storage", tmp / "studies", cwd=tmp)
    try:
        _wait_for(run, lambda: (_trials(study_dir)["status"] == "running").any(), "a running trial")
        # All three at once, while the first trial runs: a second driver, a second run, a status.
        checks = {name: subprocess.Popen([sys.executable, "-m", "simclr_sweep", *map(str, args)], cwd=tmp,
                                         env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                  for name, args in (("second", ("resume", study_dir)),
                                     ("second_run", ("run", space, "--storage", tmp / "studies")),
                                     ("status", ("status", study_dir)))}
        for name, proc in checks.items():
            out, err = proc.communicate(timeout=300)
            seen[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        seen["holder_pid"] = run.pid
        _wait_for(run, lambda: _trials(study_dir)["status"].isin(TERMINAL).any(), "a finished trial")
        run.send_signal(signal.SIGINT)
        seen["run_output"], _ = run.communicate(timeout=300)
        seen["run_rc"] = run.returncode
    finally:
        kill_tree(run)
    seen["report"] = (study_dir / "report" / "index.html").read_text()
    seen["after_ctrl_c"] = _trials(study_dir)

    resume = _popen("resume", study_dir, cwd=tmp)
    try:
        # Rows the Ctrl-C left `running` are there already: wait for Tune's own trial folder instead.
        _wait_for(resume, lambda: any((study_dir / "tune-resume-1").glob("trial-*")), "a trial of the resume")
        resume.send_signal(signal.SIGINT)
        time.sleep(0.5)
        resume.send_signal(signal.SIGINT)
        seen["twice_output"], _ = resume.communicate(timeout=300)
        seen["twice_rc"] = resume.returncode
    finally:
        kill_tree(resume)
    seen["final"] = _cli("resume", study_dir, cwd=tmp, timeout=600)
    seen["final_trials"] = _trials(study_dir)
    return tmp, study_dir, seen


def test_a_second_driver_is_refused_naming_the_first(held_study):
    _, study_dir, seen = held_study
    line = _one_error_line(seen["second"])
    assert seen["second"].returncode == 1
    assert f"pid {seen['holder_pid']}" in line and "host " in line and "since " in line
    assert seen["second_run"].returncode == 2 and "already holds a study" in _one_error_line(seen["second_run"])
    assert seen["status"].returncode == 0 and "trials: " in seen["status"].stdout  # status needs no lease


def test_ctrl_c_stops_cleanly_says_how_to_continue_and_the_report_is_partial(held_study):
    _, study_dir, seen = held_study
    assert seen["run_rc"] == 130, seen["run_output"]
    done = int(seen["after_ctrl_c"]["status"].isin(TERMINAL).sum())
    assert f"interrupted: {done} of 3 trials done; continue with `simclr-sweep resume {study_dir}`" \
        in seen["run_output"]
    assert "Traceback" not in seen["run_output"]
    assert "partial" in seen["report"]


def test_a_second_ctrl_c_exits_at_once_and_the_study_still_resumes_to_the_end(held_study):
    _, study_dir, seen = held_study
    assert seen["twice_rc"] == 130, seen["twice_output"]
    assert f"simclr-sweep resume {study_dir}" in seen["twice_output"]
    assert seen["final"].returncode == 0, seen["final"].stdout + seen["final"].stderr
    final = seen["final_trials"]
    assert set(final["status"]) == {"completed"}
    assert sorted(final[f"{PARAM_PREFIX}temperature"]) == [0.2, 0.5, 0.7]  # every grid point exactly once
    assert not (study_dir / "report" / "index.html").read_text().count("(partial:")


@pytest.fixture(scope="module")
def finished_copy(held_study, tmp_path_factory):
    """A fresh copy of the finished study, to damage."""
    _, study_dir, _ = held_study

    def copy(name: str) -> Path:
        target = tmp_path_factory.mktemp(name) / "held"
        shutil.copytree(study_dir, target)
        return target
    return copy


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_trials_table_is_one_line_naming_it(finished_copy, damage):
    study = finished_copy(f"trials-{damage}")
    table = study / "tables" / "trials.parquet"
    data = table.read_bytes()
    table.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    for command in ("status", "report", "resume"):
        result = _cli(command, study, cwd=study.parent, timeout=120)
        assert result.returncode == 1, (command, result.stderr)
        line = _one_error_line(result)
        assert str(table) in line and "restore it from a copy" in line, line


def test_a_damaged_epochs_part_is_one_line_naming_it(finished_copy):
    study = finished_copy("epochs-part")
    part = sorted((study / "tables" / "epochs").glob("*.parquet"))[0]
    part.write_bytes(b"")
    result = _cli("report", study, cwd=study.parent, timeout=120)
    assert result.returncode == 1 and str(part) in _one_error_line(result)


def test_a_journal_line_that_is_not_json_is_one_line_naming_it(finished_copy):
    study = finished_copy("journal")
    journal = study / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b"not json\n" + b"".join(lines[1:]))
    result = _cli("resume", study, cwd=study.parent, timeout=120)
    assert result.returncode == 1, result.stderr
    assert str(journal) in _one_error_line(result)


@pytest.mark.parametrize("journal", ["deleted", "emptied"])
def test_a_lost_journal_is_rebuilt_from_the_tables_and_nothing_finished_runs_again(finished_copy, journal):
    study = finished_copy(f"journal-{journal}")
    path = study / "optuna.journal"
    path.unlink() if journal == "deleted" else path.write_bytes(b"")
    before = _trials(study)
    result = _cli("resume", study, cwd=study.parent, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "optuna.journal: lacked 3 configurations the tables hold; told Optuna each once" in result.stdout
    assert _trials(study)[["trial_id", "status"]].equals(before[["trial_id", "status"]])  # nothing re-ran


@pytest.mark.parametrize("text", ["", "name: [unclosed\n"])
def test_an_empty_or_invalid_declaration_is_one_line_under_status_and_report(finished_copy, text):
    study = finished_copy("declaration")
    (study / "study.yaml").write_text(text)
    for command in ("status", "report"):
        result = _cli(command, study, cwd=study.parent, timeout=120)
        assert "Traceback" not in result.stderr, (command, result.stderr)
        if result.returncode:  # the tables alone may be enough; a refusal names the file
            assert result.returncode == 2 and "study.yaml" in _one_error_line(result)


@pytest.fixture
def read_only(tmp_path):
    """A read-only mount (the tests run as root: chmod would not stop a write)."""
    mounted = []

    def mount(source: Path | None = None) -> Path:
        target = tmp_path / f"ro{len(mounted)}"
        target.mkdir()
        command = (["mount", "--bind", str(source), str(target)] if source
                   else ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)])
        if subprocess.run(command, capture_output=True).returncode:
            pytest.skip("this machine allows no mount")
        mounted.append(target)
        if source and subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode:
            pytest.skip("this machine allows no read-only remount")
        return target
    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def test_read_only_storage_is_one_line(tmp_path, read_only):
    space = _write(tmp_path, ONE)
    result = _cli("run", space, "--storage", read_only() / "studies", cwd=tmp_path, timeout=120)
    assert result.returncode == 1 and "read-only" in _one_error_line(result)


def test_a_read_only_study_under_report_and_resume_is_one_line_and_loses_nothing(finished_copy, read_only):
    study = finished_copy("read-only")
    before = {p: p.read_bytes() for p in study.rglob("*") if p.is_file()}
    mounted = read_only(study)
    for command in ("report", "resume"):
        result = _cli(command, mounted, cwd=study.parent, timeout=120)
        assert result.returncode == 1 and "read-only" in _one_error_line(result), (command, result.stderr)
    assert {p: p.read_bytes() for p in study.rglob("*") if p.is_file()} == before


def test_storage_that_is_a_file_is_one_line(tmp_path):
    space = _write(tmp_path, ONE)
    (tmp_path / "afile").write_text("")
    result = _cli("run", space, "--storage", tmp_path / "afile", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "afile" in _one_error_line(result)


@pytest.mark.parametrize("name", ["", "x\n", "a\x1b[2Jb"])
def test_names_that_cannot_be_folders_are_refused(tmp_path, name):
    space = _write(tmp_path, ONE)
    result = _cli("run", space, "--storage", tmp_path / "studies", "--name", name, cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "--name" in _one_error_line(result)
    assert not (tmp_path / "studies").exists()
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump({**ONE, "name": name or "x\n"}))
    result = _cli("validate", tmp_path / "bad.yaml", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and "name" in _one_error_line(result)


def test_a_ray_that_cannot_start_leaves_no_folder_to_block_the_retry(tmp_path):
    space = _write(tmp_path, ONE)
    (tmp_path / "not-a-dir").write_text("")
    result = _cli("run", space, "--storage", tmp_path / "studies", cwd=tmp_path,
                  env=_env(RAY_TMPDIR=str(tmp_path / "not-a-dir")), timeout=300)
    assert result.returncode == 1 and "Ray" in _one_error_line(result)
    assert not (tmp_path / "studies" / "one").exists()


def test_a_running_ray_cluster_is_left_alone_and_named(tmp_path):
    """`ray start --head` on its own port and temp dir (so no other test sees it), ended by pid."""
    ray_tmp = Path(f"/tmp/rc{os.getpid()}")  # short: Ray's socket paths must fit in 107 bytes
    ray_tmp.mkdir()
    env = _env(RAY_TMPDIR=str(ray_tmp))
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        current = ray_tmp / "ray" / "ray_current_cluster"
        _wait_for(head, current.exists, "the head's current-cluster file", limit_s=120)
        space = _write(tmp_path, ONE)
        result = _cli("run", space, "--storage", tmp_path / "studies", cwd=tmp_path, env=env, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "--address auto" in result.stderr and "Traceback" not in result.stderr
        assert set(_trials(tmp_path / "studies" / "one")["status"]) == {"completed"}
        assert head.poll() is None  # the other cluster still runs
    finally:
        kill_tree(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)
