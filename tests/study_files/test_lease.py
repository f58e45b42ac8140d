"""One driver per study: the folder lease (flock) and the S3 lease object (conditional writes, moto's server)."""
import json
import os
import socket
import subprocess
import sys
import time

import boto3
import pytest

from study_files import lease
from study_files.errors import EnvironmentFault

HOLD = "import sys, time; from study_files.lease import study_lease\nwith study_lease(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)"


def test_a_second_holder_of_a_folder_is_refused_naming_the_first(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(EnvironmentFault) as refused:
            with lease.study_lease(tmp_path):
                pass
        line = str(refused.value)
        assert "\n" not in line and f"pid {holder.pid}" in line and "host " in line and "since " in line
    finally:
        holder.kill()
        holder.wait()
    with lease.study_lease(tmp_path):  # the holder's death released it
        assert json.loads((tmp_path / lease.LEASE_FILE).read_text())["pid"] == os.getpid()


def test_an_s3_lease_refuses_a_second_driver_and_is_taken_over_once_it_lapses(s3_bucket, monkeypatch):
    uri = f"s3://{s3_bucket}/studies/one"
    with lease.study_lease(uri):
        with pytest.raises(EnvironmentFault, match=rf"pid {os.getpid()}, since "):
            with lease.study_lease(uri):
                pass
    with lease.study_lease(uri):  # released at the end of the block
        pass
    # A holder that died without releasing: its lease object stays, not renewed, until it lapses.
    client = boto3.client("s3")
    dead = {"host": "elsewhere", "pid": 1, "since": "2026-01-01 00:00:00 UTC", "expires": time.time() + 30}
    client.put_object(Bucket=s3_bucket, Key=f"studies/one/{lease.LEASE_FILE}", Body=json.dumps(dead).encode())
    with pytest.raises(EnvironmentFault, match="host elsewhere, pid 1, since 2026-01-01"):
        with lease.study_lease(uri):
            pass
    dead["expires"] = time.time() - 1
    client.put_object(Bucket=s3_bucket, Key=f"studies/one/{lease.LEASE_FILE}", Body=json.dumps(dead).encode())
    with lease.study_lease(uri):
        body = client.get_object(Bucket=s3_bucket, Key=f"studies/one/{lease.LEASE_FILE}")["Body"].read()
        assert json.loads(body)["pid"] == os.getpid()


def test_an_s3_lease_whose_holder_died_on_this_host_is_taken_over_at_once(s3_bucket):
    # What a SIGKILLed driver leaves: an unexpired lease naming a pid that no longer runs here.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    uri = f"s3://{s3_bucket}/studies/killed"
    client = boto3.client("s3")
    held = {"host": socket.gethostname(), "pid": gone.pid, "since": "2026-01-01 00:00:00 UTC",
            "expires": time.time() + 30}
    client.put_object(Bucket=s3_bucket, Key=f"studies/killed/{lease.LEASE_FILE}", Body=json.dumps(held).encode())
    with lease.study_lease(uri):
        body = client.get_object(Bucket=s3_bucket, Key=f"studies/killed/{lease.LEASE_FILE}")["Body"].read()
        assert json.loads(body)["pid"] == os.getpid()
