"""A study runs on an existing multi-node Ray cluster given by --address."""
import os
import subprocess
import sys

import pandas as pd
import pytest
import yaml
from ray.cluster_utils import Cluster

STUDY = {
    "name": "on-cluster",
    "metric": {"name": "knn_top1", "goal": "maximize"},
    "method": "grid",
    "max_concurrent": 2,
    "resources": {"cpu": 1},
    "fixed": {"dataset": "shapes", "dataset_size": 256, "backbone": "convnet", "epochs": 2,
              "batch_size": 64, "optimizer": "adam", "lr": 0.002, "eval_every": 1},
    "parameters": {"temperature": {"values": [0.2, 0.5]}},
}


@pytest.fixture(scope="module")
def two_node_cluster():
    # Two nodes of one CPU each: two one-CPU trials can only run together by using both.
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def test_study_runs_on_both_nodes_of_the_cluster(two_node_cluster, tmp_path):
    space = tmp_path / "study.yaml"
    space.write_text(yaml.safe_dump(STUDY))
    proc = subprocess.run(
        [sys.executable, "-m", "simclr_sweep", "run", str(space), "--storage", str(tmp_path / "studies"),
         "--address", two_node_cluster.address],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "RAY_ADDRESS": ""}, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    trials = pd.read_parquet(tmp_path / "studies" / "on-cluster" / "tables" / "trials.parquet")
    assert sorted(trials["status"]) == ["completed", "completed"]
    first, second = trials.sort_values("started_at").to_dict("records")
    assert second["started_at"] < first["ended_at"], "the trials did not overlap, so one node sat idle"
    # The driver joined the cluster and left it running for its owner.
    assert two_node_cluster.head_node.remaining_processes_alive()
