"""Process helpers shared by the end-to-end tests that kill a study's driver."""
import subprocess

import psutil


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and every process it started (Ray's raylet, GCS, workers), by pid."""
    try:
        parent = psutil.Process(proc.pid)
        victims = [parent] + parent.children(recursive=True)
    except psutil.NoSuchProcess:
        return
    for p in victims:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(timeout=30)
    psutil.wait_procs(victims, timeout=30)
