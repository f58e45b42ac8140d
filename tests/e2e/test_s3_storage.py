"""A study whose storage is an s3:// URI (moto's S3 server on 127.0.0.1): run, status, report, resume.

Everything goes through the CLI in a child process, as a user would run it, with the standard AWS
variables pointing at the test server; the local disk holds only the driver's cache (the Optuna
journal) and Ray's own session files.
"""
import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import psutil
import pytest
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from processes import kill_tree
from study_files.locations import StudyFiles
from study_files.tables import StudyTables

SMALL = {
    "name": "s3-small",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "random",
    "trials": 2,
    "sampler_seed": 1,
    "max_concurrent": 2,
    "resources": {"cpu": 1, "gpu": 0},
    "early_stopping": {"type": "none"},
    "fixed": {"dataset": "shapes", "dataset_size": 128, "backbone": "convnet", "epochs": 2,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {"temperature": {"distribution": "log_uniform", "min": 0.1, "max": 1.0}},
}
TERMINAL = {"completed", "early_stopped", "diverged", "failed"}


@pytest.fixture(scope="module")
def s3_env(s3_server, tmp_path_factory):
    """This process and its children reach the test server as S3; the driver's cache is a temp dir."""
    cache = tmp_path_factory.mktemp("cache")
    env = {**s3_server.env, "SIMCLR_SWEEP_CACHE": str(cache)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        for key in ("AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_PROFILE"):
            patch.delenv(key, raising=False)
        yield {**os.environ, "RAY_ADDRESS": ""}, cache


def _cli(*args, env, cwd, timeout=300):
    return subprocess.run([sys.executable, "-m", "simclr_sweep", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=timeout)


@pytest.fixture(scope="module")
def s3_study(s3_server, s3_env, tmp_path_factory):
    env, cache = s3_env
    bucket = s3_server.create_bucket()
    tmp = tmp_path_factory.mktemp("s3run")
    space = tmp / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    started = time.monotonic()
    proc = _cli("run", str(space), "--storage", f"s3://{bucket}/studies", "--no-dashboard", env=env, cwd=tmp)
    print(f"s3 study run: {time.monotonic() - started:.1f} s")
    return proc, f"s3://{bucket}/studies/s3-small", tmp, cache


def test_run_exits_zero_and_prints_the_report_uri(s3_study):
    proc, uri, _, _ = s3_study
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"storage {uri}" in proc.stdout
    assert f"report: {uri}/report/index.html" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_trials_on_s3_all_terminal(s3_study):
    _, uri, _, _ = s3_study
    trials = StudyTables(uri).read_trials()
    assert len(trials) == 2 and trials["trial_id"].is_unique
    assert set(trials["status"]) <= TERMINAL
    assert (trials["status"] == "completed").all(), trials[["trial_id", "status", "error"]]
    epochs = StudyTables(uri).read_epochs()
    assert sorted(epochs.groupby("trial_id")["epoch"].max()) == [2, 2]


def test_files_of_the_study_live_on_s3(s3_study):
    _, uri, tmp, cache = s3_study
    files = StudyFiles(uri)
    assert yaml.safe_load(files.read_text("study.yaml"))["name"] == "s3-small"
    assert files.is_file("report/index.html")
    assert files.is_file("tables/trials.parquet") and files.is_file("tables/run_time.json")
    trial_dirs = [n for n in files.list("tune") if n.startswith("trial-")]
    assert len(trial_dirs) == 2
    assert any(n.startswith("checkpoint_") for n in files.list(f"tune/{trial_dirs[0]}"))  # Tune wrote them
    assert not (tmp / "studies").exists()  # nothing of the study on the local disk but the cache
    local_journal = cache / uri[len("s3://"):] / "optuna.journal"
    assert files.read_bytes("optuna.journal") == local_journal.read_bytes()


def test_optuna_journal_copy_on_s3_is_whole(s3_study, tmp_path):
    _, uri, _, _ = s3_study
    copy = tmp_path / "optuna.journal"
    copy.write_bytes(StudyFiles(uri).read_bytes("optuna.journal"))
    study = optuna.load_study(study_name="s3-small", storage=JournalStorage(JournalFileBackend(str(copy))))
    assert len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]) == 2


def test_status_and_report_take_the_uri(s3_study, capsys):
    from simclr_sweep.cli import main  # in this process: each command is one call, no interpreter start

    _, uri, _, _ = s3_study
    assert main(["status", uri]) == 0
    out = capsys.readouterr().out
    assert "trials: 2 completed" in out and f"in {uri}" in out
    best = StudyTables(uri).read_trials().sort_values("best.knn_top1", ascending=False).iloc[0]["trial_id"]
    StudyFiles(uri).delete("report/index.html")
    assert main(["report", uri + "/"]) == 0
    assert capsys.readouterr().out.strip() == f"{uri}/report/index.html"
    assert best in StudyFiles(uri).read_text("report/index.html")


def test_run_refuses_an_s3_study_in_use(s3_study, capsys):
    from simclr_sweep.cli import main

    _, uri, tmp, _ = s3_study
    assert main(["run", str(tmp / "small.yaml"), "--storage", uri.rsplit("/", 1)[0]]) == 2
    assert capsys.readouterr().err.strip() == (f"error: {uri}: already holds a study; continue it with "
                                               f"`simclr-sweep resume {uri}` or start a new one with --name")


@pytest.mark.parametrize("storage, endpoint, expected", [
    ("s3://", None, "error: --storage: s3://: names no bucket; give a folder or a URI such as s3://bucket/prefix"),
    ("s3:///studies", None, "error: --storage: s3:///studies: an s3 URI names a bucket, as in s3://bucket/prefix; "
                            "give a folder or a URI such as s3://bucket/prefix"),
    ("s3://no-such-bucket/studies", None,
     "error: --storage: s3://no-such-bucket/studies: bucket 'no-such-bucket' does not exist; "
     "create it, or give one that does (s3://BUCKET/PREFIX)"),
    ("s3://bucket/studies", "http://127.0.0.1:9", "error: --storage: s3://bucket/studies: cannot reach "
                                                  "the endpoint http://127.0.0.1:9 (AWS_ENDPOINT_URL); "),
])
def test_bad_storage_is_one_line_naming_storage(s3_env, tmp_path, capsys, monkeypatch, storage, endpoint, expected):
    from simclr_sweep.cli import main

    if endpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    space = tmp_path / "small.yaml"
    space.write_text(yaml.safe_dump(SMALL, sort_keys=False))
    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a --storage that cannot work")

    monkeypatch.setattr("simclr_sweep.runner.start_ray", no_ray)  # refused before Ray starts
    assert main(["run", str(space), "--storage", storage]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err
    assert not (tmp_path / "s3:").exists()


def test_a_missing_or_unreachable_s3_study_is_one_line(s3_study, capsys, monkeypatch):
    from simclr_sweep.cli import main

    _, uri, _, _ = s3_study
    for command in ("status", "report", "resume"):
        assert main([command, uri + "-nope"]) == 2
        missing = "no study.yaml, no tables/trials.parquet" if command == "report" else "no study.yaml"
        assert capsys.readouterr().err.strip() == (f"error: {uri}-nope: not a study directory ({missing}); "
                                                   "give the folder `simclr-sweep run` created"), command
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    assert main(["status", uri]) == 2
    assert capsys.readouterr().err.startswith(f"error: STUDY_DIR: {uri}: cannot reach the endpoint http://127.0.0.1:9")


# -- SIGKILL the driver mid-way, then resume from s3 --------------------------------------------

GRID = {
    "name": "s3-resume",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "grid",
    "max_concurrent": 2,
    "resources": {"cpu": 1},
    "early_stopping": {"type": "none"},
    "fixed": {"dataset": "shapes", "dataset_size": 128, "backbone": "convnet", "epochs": 3,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {"temperature": {"values": [0.2, 0.3, 0.5]}},
}


@pytest.fixture(scope="module")
def s3_resumed(s3_server, s3_env, tmp_path_factory):
    env, cache = s3_env
    bucket = s3_server.create_bucket()
    tmp = tmp_path_factory.mktemp("s3resume")
    space = tmp / "grid.yaml"
    space.write_text(yaml.safe_dump(GRID, sort_keys=False))
    uri = f"s3://{bucket}/studies/s3-resume"
    run = subprocess.Popen([sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage", f"s3://{bucket}/studies",
                            "--no-dashboard"],
                           cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            trials = StudyTables(uri).read_trials()
            epochs = StudyTables(uri).read_epochs()
            seen = epochs.groupby("trial_id")["epoch"].nunique() if len(epochs) else pd.Series(dtype=int)
            half = [t for t in trials.loc[trials["status"] == "running", "trial_id"] if 1 <= seen.get(t, 0) < 3]
            if half:
                break
            assert run.poll() is None, run.stdout.read().decode()
            time.sleep(0.2)
        else:
            pytest.fail("the study never reached a state with a half-trained trial")
    finally:
        kill_tree(run)
    before = StudyTables(uri).read_trials()
    epochs = StudyTables(uri).read_epochs()
    seen = epochs.groupby("trial_id")["epoch"].nunique() if len(epochs) else pd.Series(dtype=int)
    before["epochs_seen"] = [int(seen.get(t, 0)) for t in before["trial_id"]]
    half = set(before.loc[(before["status"] == "running") & (before["epochs_seen"] >= 1), "trial_id"])
    # The first resume continues the half-trained trials; once they are done, while another trial runs, a Ctrl-C.
    started = time.monotonic()
    resume = subprocess.Popen([sys.executable, "-m", "simclr_sweep", "resume", uri, "--no-dashboard"], cwd=tmp, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            trials = StudyTables(uri).read_trials().set_index("trial_id")
            if half <= set(trials.index[trials["status"] == "completed"]) and (trials["status"] == "running").any():
                break
            assert resume.poll() is None, resume.communicate()
            time.sleep(0.2)
        else:
            pytest.fail("the first resume never finished the half-trained trials while another ran")
        resume.send_signal(signal.SIGINT)
        out, err = resume.communicate(timeout=300)
        interrupted = subprocess.CompletedProcess(resume.args, resume.returncode, out, err)
    finally:
        kill_tree(resume)
    after_ctrl_c = StudyTables(uri).read_trials()
    resumed = _cli("resume", uri, "--no-dashboard", env=env, cwd=tmp)
    print(f"s3 study resumes: {time.monotonic() - started:.1f} s")
    return before, resumed, uri, interrupted, after_ctrl_c


def test_resume_from_s3_ends_the_study(s3_resumed):
    before, resumed, uri, _, _ = s3_resumed
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"report: {uri}/report/index.html" in resumed.stdout
    after = StudyTables(uri).read_trials().set_index("trial_id")
    assert len(after) == 3 and set(after["status"]) == {"completed"}
    assert sorted(after["param.temperature"]) == [0.2, 0.3, 0.5]  # every grid point once
    for _, row in before.iterrows():  # interrupted trials kept their ids
        assert row["trial_id"] in after.index
    epochs = StudyTables(uri).read_epochs()
    assert not epochs.duplicated(["trial_id", "epoch"]).any()
    assert sorted(epochs.groupby("trial_id")["epoch"].max()) == [3, 3, 3]


def test_interrupted_trial_continued_from_its_s3_checkpoint(s3_resumed):
    before, _, uri, _, _ = s3_resumed
    files = StudyFiles(uri)
    half = before[(before["status"] == "running") & (before["epochs_seen"] >= 1)]
    assert len(half)
    for _, row in half.iterrows():
        checkpoints = [n for n in files.list(f"tune-resume-1/trial-{row['trial_id']}") if n.startswith("checkpoint_")]
        reports = max(int(n.split("_")[-1]) for n in checkpoints) + 1
        # Only the epochs after its last checkpoint (downloaded from s3 by the trial) were trained again.
        assert reports <= 3 - row["epochs_seen"] + 1


def test_optuna_on_s3_learned_each_grid_point_once(s3_resumed, tmp_path):
    _, _, uri, _, _ = s3_resumed
    copy = tmp_path / "optuna.journal"
    copy.write_bytes(StudyFiles(uri).read_bytes("optuna.journal"))
    study = optuna.load_study(study_name="s3-resume", storage=JournalStorage(JournalFileBackend(str(copy))))
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert sorted(t.params["temperature"] for t in complete) == [0.2, 0.3, 0.5]


def test_ctrl_c_on_an_s3_study_stops_it_says_how_to_continue_and_resume_finishes_it(s3_resumed):
    _, resumed, uri, interrupted, after_ctrl_c = s3_resumed
    assert interrupted.returncode == 130, interrupted.stdout + interrupted.stderr
    done = int(after_ctrl_c["status"].isin(TERMINAL).sum())
    assert f"interrupted: {done} of 3 trials done; continue with `simclr-sweep resume {uri}`" in interrupted.stdout
    assert f"report (partial): {uri}/report/index.html" in interrupted.stdout
    assert "Traceback" not in interrupted.stderr and 0 < done < 3
    assert resumed.returncode == 0 and "finished: 3 completed" in resumed.stdout, resumed.stdout + resumed.stderr
    assert "(partial:" not in StudyFiles(uri).read_text("report/index.html")


def test_no_ray_process_left_behind(s3_server, s3_resumed, s3_study):
    """Every process the studies started (they alone have this test server in their environment) is gone."""
    leftovers = []
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == os.getpid():
            continue
        try:
            if proc.environ().get("AWS_ENDPOINT_URL") == s3_server.endpoint:
                leftovers.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess, OSError):
            continue
    assert leftovers == []
