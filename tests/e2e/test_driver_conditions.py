"""The driver under real conditions, met as a user meets them: the CLI in a child process.

A second driver on a running study, Ctrl-C (once, twice), a Ray cluster already running on the
machine, a Ray that cannot start, names that cannot be folders, control sequences in a trial's text,
and storage or study files the machine refuses or that were damaged.
"""
import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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
    "fixed": {"dataset": "shapes", "dataset_size": 128, "backbone": "convnet", "epochs": 2,
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


def _cli_all(calls: dict, workers: int = 3) -> dict:
    """`_cli(*args, cwd=cwd, env=env)` for each `name: (args, cwd[, env])`, a few at once: each a process of its own."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {name: pool.submit(_cli, *call[0], cwd=call[1], env=call[2] if len(call) > 2 else None, timeout=300)
                   for name, call in calls.items()}
        return {name: future.result() for name, future in futures.items()}


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
    run = _popen("run", space, "--storage", tmp / "studies", "--no-dashboard", cwd=tmp)
    try:
        _wait_for(run, lambda: (_trials(study_dir)["status"] == "running").any(), "a running trial")
        # All three at once, while the first trial runs: a second driver, a second run, a status. The driver
        # is paused meanwhile (its lease stays held, its trials wait on it): however slow the checks are on a
        # loaded machine, the study still runs when they end.
        run.send_signal(signal.SIGSTOP)
        try:
            checks = {name: subprocess.Popen([sys.executable, "-m", "simclr_sweep", *map(str, args)], cwd=tmp,
                                             env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                      for name, args in (("second", ("resume", study_dir)),
                                         ("second_run", ("run", space, "--storage", tmp / "studies")),
                                         ("status", ("status", study_dir)))}
            for name, proc in checks.items():
                out, err = proc.communicate(timeout=300)
                seen[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        finally:
            run.send_signal(signal.SIGCONT)
        seen["holder_pid"] = run.pid
        _wait_for(run, lambda: _trials(study_dir)["status"].isin(TERMINAL).any(), "a finished trial")
        run.send_signal(signal.SIGINT)
        seen["run_output"], _ = run.communicate(timeout=300)
        seen["run_rc"] = run.returncode
    finally:
        kill_tree(run)
    seen["report"] = (study_dir / "report" / "index.html").read_text()
    seen["after_ctrl_c"] = _trials(study_dir)

    resume = _popen("resume", study_dir, "--no-dashboard", cwd=tmp)
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
    seen["final"] = _cli("resume", study_dir, "--no-dashboard", cwd=tmp, timeout=600)
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


def _copy(study_dir: Path, parent: Path, case: str) -> Path:
    target = parent / case / study_dir.name
    shutil.copytree(study_dir, target)
    return target


def _read_only_bind(source: Path, target: Path, mounted: list[Path]) -> str | None:
    """Mount `source` read-only at `target` (the tests run as root: chmod would not stop a write); why not, if not."""
    target.mkdir()
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode:
        return "this machine allows no mount"
    mounted.append(target)
    if subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], capture_output=True).returncode:
        return "this machine allows no read-only remount"
    return None


def _unmount(mounted: list[Path]) -> None:
    for target in reversed(mounted):
        subprocess.run(["umount", str(target)], check=True)


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def damaged(held_study, tmp_path_factory):
    """Copies of the finished study, each damaged one way (or mounted read-only), and what each command
    said of each: `results[case, command]`. The commands are independent processes, run a few at once."""
    _, study_dir, _ = held_study
    tmp = tmp_path_factory.mktemp("damaged")
    calls, seen, mounted = {}, {}, []
    for damage in ("truncated", "empty"):
        study = _copy(study_dir, tmp, f"trials-{damage}")
        table = seen[f"trials-{damage}"] = study / "tables" / "trials.parquet"
        data = table.read_bytes()
        table.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
        calls.update({(f"trials-{damage}", command): ((command, study), study.parent)
                      for command in ("status", "report", "resume")})
    study = _copy(study_dir, tmp, "epochs-part")
    part = seen["epochs-part"] = sorted((study / "tables" / "epochs").glob("*.parquet"))[0]
    part.write_bytes(b"")
    calls["epochs-part", "report"] = (("report", study), study.parent)
    study = _copy(study_dir, tmp, "journal")
    journal = seen["journal"] = study / "optuna.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(lines[0] + b"not json\n" + b"".join(lines[1:]))
    calls["journal", "resume"] = (("resume", study), study.parent)
    for loss in ("deleted", "emptied"):
        study = seen[f"journal-{loss}"] = _copy(study_dir, tmp, f"journal-{loss}")
        path = study / "optuna.journal"
        path.unlink() if loss == "deleted" else path.write_bytes(b"")
        seen[f"journal-{loss}", "before"] = _trials(study)
        calls[f"journal-{loss}", "resume"] = (("resume", study), study.parent)
    for i, text in enumerate(["", "name: [unclosed\n"]):
        study = _copy(study_dir, tmp, f"declaration-{i}")
        (study / "study.yaml").write_text(text)
        calls.update({(f"declaration-{text!r}", command): ((command, study), study.parent)
                      for command in ("status", "report")})
    study = seen["read-only"] = _copy(study_dir, tmp, "read-only")
    seen["read-only", "before"] = _files(study)
    try:
        seen["read-only", "skip"] = _read_only_bind(study, tmp / "read-only-mount", mounted)
        if not seen["read-only", "skip"]:
            calls.update({("read-only", command): ((command, tmp / "read-only-mount"), study.parent)
                          for command in ("report", "resume")})
        results = _cli_all(calls)
    finally:
        _unmount(mounted)
    return results, seen


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_trials_table_is_one_line_naming_it(damaged, damage):
    results, seen = damaged
    for command in ("status", "report", "resume"):
        result = results[f"trials-{damage}", command]
        assert result.returncode == 1, (command, result.stderr)
        line = _one_error_line(result)
        assert str(seen[f"trials-{damage}"]) in line and "restore it from a copy" in line, line


def test_a_damaged_epochs_part_is_one_line_naming_it(damaged):
    results, seen = damaged
    result = results["epochs-part", "report"]
    assert result.returncode == 1 and str(seen["epochs-part"]) in _one_error_line(result)


def test_a_journal_line_that_is_not_json_is_one_line_naming_it(damaged):
    results, seen = damaged
    result = results["journal", "resume"]
    assert result.returncode == 1, result.stderr
    assert str(seen["journal"]) in _one_error_line(result)


@pytest.mark.parametrize("journal", ["deleted", "emptied"])
def test_a_lost_journal_is_rebuilt_from_the_tables_and_nothing_finished_runs_again(damaged, journal):
    results, seen = damaged
    result = results[f"journal-{journal}", "resume"]
    before = seen[f"journal-{journal}", "before"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert "optuna.journal: lacked 3 configurations the tables hold; told Optuna each once" in result.stdout
    assert _trials(seen[f"journal-{journal}"])[["trial_id", "status"]].equals(before[["trial_id", "status"]])  # nothing re-ran


@pytest.mark.parametrize("text", ["", "name: [unclosed\n"])
def test_an_empty_or_invalid_declaration_is_one_line_under_status_and_report(damaged, text):
    results, _ = damaged
    for command in ("status", "report"):
        result = results[f"declaration-{text!r}", command]
        assert "Traceback" not in result.stderr, (command, result.stderr)
        if result.returncode:  # the tables alone may be enough; a refusal names the file
            assert result.returncode == 2 and "study.yaml" in _one_error_line(result)


def test_a_read_only_study_under_report_and_resume_is_one_line_and_loses_nothing(damaged):
    results, seen = damaged
    if seen["read-only", "skip"]:
        pytest.skip(seen["read-only", "skip"])
    for command in ("report", "resume"):
        result = results["read-only", command]
        line = _one_error_line(result)
        assert result.returncode == 1 and "read-only" in line, (command, result.stderr)
        assert ".tmp:" not in line  # the file the user knows, not the temporary written aside
    assert _files(seen["read-only"]) == seen["read-only", "before"]


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """What `run` and `validate` said of storage and names they must refuse, and of a Ray that cannot start:
    `results[case]`, each in a folder of its own (`folders[case]`). Independent processes, a few at once."""
    tmp = tmp_path_factory.mktemp("refused")
    calls, folders, mounted, skip = {}, {}, [], {}

    def folder(case: str) -> tuple[Path, Path]:
        where = folders[case] = tmp / case
        where.mkdir()
        return where, _write(where, ONE)
    where, space = folder("read-only-storage")
    target = where / "ro"
    target.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(target)], capture_output=True).returncode:
        skip["read-only-storage"] = "this machine allows no mount"
    else:
        mounted.append(target)
        calls["read-only-storage"] = (("run", space, "--storage", target / "studies"), where)
    where, space = folder("storage-file")
    (where / "afile").write_text("")
    calls["storage-file"] = (("run", space, "--storage", where / "afile"), where)
    for i, name in enumerate(["", "x\n", "a\x1b[2Jb"]):
        where, space = folder(f"name-{i}")
        calls[f"name-{i}", "run"] = (("run", space, "--storage", where / "studies", "--name", name), where)
        (where / "bad.yaml").write_text(yaml.safe_dump({**ONE, "name": name or "x\n"}))
        calls[f"name-{i}", "validate"] = (("validate", where / "bad.yaml"), where)
    where, space = folder("no-ray")
    (where / "not-a-dir").write_text("")
    calls["no-ray"] = (("run", space, "--storage", where / "studies"), where, _env(RAY_TMPDIR=str(where / "not-a-dir")))
    try:
        results = _cli_all(calls)
    finally:
        _unmount(mounted)
    return results, folders, skip


def test_read_only_storage_is_one_line(refused):
    results, _, skip = refused
    if "read-only-storage" in skip:
        pytest.skip(skip["read-only-storage"])
    result = results["read-only-storage"]
    assert result.returncode == 1 and "read-only" in _one_error_line(result)


def test_storage_that_is_a_file_is_one_line(refused):
    result = refused[0]["storage-file"]
    assert result.returncode == 2 and "afile" in _one_error_line(result)


@pytest.mark.parametrize("case", [0, 1, 2], ids=["empty", "newline", "escape"])
def test_names_that_cannot_be_folders_are_refused(refused, case):
    results, folders, _ = refused
    result = results[f"name-{case}", "run"]
    assert result.returncode == 2 and "--name" in _one_error_line(result)
    assert not (folders[f"name-{case}"] / "studies").exists()
    result = results[f"name-{case}", "validate"]
    assert result.returncode == 2 and "name" in _one_error_line(result)


def test_a_ray_that_cannot_start_leaves_no_folder_to_block_the_retry(refused):
    results, folders, _ = refused
    result = results["no-ray"]
    assert result.returncode == 1 and "Ray" in _one_error_line(result)
    assert not (folders["no-ray"] / "studies" / "one").exists()


FULL = {**ONE, "name": "full", "fixed": {**ONE["fixed"], "epochs": 2}}


def _fill(path: Path) -> None:
    """Write zeros to `path` until its filesystem has not one byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(1 << 20))  # the last write is cut short; the one after fails
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
    finally:
        os.close(fd)


@pytest.fixture(scope="module")
def beside_a_cluster(tmp_path_factory):
    """A Ray cluster already running here (`ray start --head` on its own port and temp dir, so no other test
    sees it, ended by pid), and beside it a 2-epoch study whose storage is a small tmpfs: the disk is
    filled once the first epoch is recorded, the run stops on it; the space freed, `resume` finishes it.
    Where this machine allows no mount, the run finishes on a plain folder."""
    tmp = tmp_path_factory.mktemp("cluster")
    ray_tmp = Path(f"/tmp/rc{os.getpid()}")  # short: Ray's socket paths must fit in 107 bytes
    ray_tmp.mkdir()
    env = _env(RAY_TMPDIR=str(ray_tmp))
    disk = tmp / "disk"
    disk.mkdir()
    mounted = not subprocess.run(["mount", "-t", "tmpfs", "-o", "size=32m", "tmpfs", str(disk)],
                                 capture_output=True).returncode
    study_dir = disk / "studies" / "full"
    seen = {"mounted": mounted, "study_dir": study_dir}
    port = _free_port()
    ray_bin = Path(sys.executable).with_name("ray")
    head = subprocess.Popen([str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=1",
                             "--include-dashboard=false", "--disable-usage-stats"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        current = ray_tmp / "ray" / "ray_current_cluster"
        _wait_for(head, current.exists, "the head's current-cluster file", limit_s=120)
        space = _write(tmp, FULL)
        run = subprocess.Popen([sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage",
                                str(disk / "studies"), "--no-dashboard"], cwd=tmp, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            if mounted:
                _wait_for(run, lambda: any((study_dir / "tables" / "epochs").glob("*.parquet")), "the first epoch's row")
                seen["before"] = (_trials(study_dir), StudyTables(study_dir).read_epochs(),
                                  (study_dir / "study.yaml").read_bytes())
                _fill(disk / "filler")
            out, err = run.communicate(timeout=300)
            seen["run"] = subprocess.CompletedProcess(run.args, run.returncode, out, err)
        finally:
            kill_tree(run)
        if mounted:
            seen["after_fault"] = (_trials(study_dir), StudyTables(study_dir).read_epochs(),
                                   (study_dir / "study.yaml").read_bytes(),
                                   sorted(p.name for p in study_dir.rglob("*.tmp")))
            (disk / "filler").unlink()
            seen["resume"] = _cli("resume", study_dir, "--no-dashboard", cwd=tmp, env=env, timeout=300)
        seen["trials"], seen["epochs"] = _trials(study_dir), StudyTables(study_dir).read_epochs()
        seen["head_alive"] = head.poll() is None
    finally:
        kill_tree(head)
        shutil.rmtree(ray_tmp, ignore_errors=True)
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)
    return seen


def test_a_running_ray_cluster_is_left_alone_and_named(beside_a_cluster):
    seen = beside_a_cluster
    finished = seen["resume"] if seen["mounted"] else seen["run"]
    assert finished.returncode == 0, finished.stdout + finished.stderr
    for result in (seen["run"], finished):  # each driver started without --address
        assert "--address auto" in result.stderr and "Traceback" not in result.stderr
    assert set(seen["trials"]["status"]) == {"completed"}
    assert seen["head_alive"]  # the other cluster still runs


def test_a_disk_filling_during_a_run_is_one_line_loses_nothing_and_resume_finishes(beside_a_cluster):
    seen = beside_a_cluster
    if not seen["mounted"]:
        pytest.skip("this machine allows no mount (a small tmpfs is the disk that fills)")
    run, study_dir = seen["run"], seen["study_dir"]
    assert run.returncode == 1, run.stdout + run.stderr
    line = _one_error_line(run)
    assert line.startswith(f"error: {study_dir}/") and line.endswith(
        ": no space left on its disk; free some and `simclr-sweep resume` the study (nothing written is lost)"), line
    trials, epochs, declaration = seen["before"]
    trials_after, epochs_after, declaration_after, temporaries = seen["after_fault"]
    assert list(trials_after["trial_id"]) == list(trials["trial_id"]) and declaration_after == declaration
    assert len(epochs_after.merge(epochs[["trial_id", "epoch"]])) == len(epochs)  # every epoch row written is there
    assert temporaries == []  # the refused writes left no half-written file behind
    resume = seen["resume"]
    assert resume.returncode == 0, resume.stdout + resume.stderr
    assert set(seen["trials"]["status"]) == {"completed"}
    assert sorted(seen["epochs"]["epoch"]) == [1, 2]  # continued from the first epoch's checkpoint, each epoch once
