"""`simclr-sweep --version` prints the installed distribution's version and exits 0."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path


def test_version_is_the_installed_distributions():
    script = Path(sys.executable).with_name("simclr-sweep")  # the console script, as a user runs it
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout == f"simclr-sweep {importlib.metadata.version('simclr-sweep')}\n"
