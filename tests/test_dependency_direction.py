"""The packages depend one way: simclr_sweep -> trainers, simclr_sweep -> reports, all -> study_files."""
import subprocess
import sys

import pytest


def _modules_after_import(package: str) -> set[str]:
    code = f"import sys, {package}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return {name.split(".")[0] for name in out.stdout.split()}


@pytest.mark.parametrize(
    "package, forbidden",
    [
        ("reports", {"torch", "ray", "torchvision", "optuna", "simclr_sweep", "trainers"}),
        ("trainers", {"ray", "optuna", "pandas", "plotly"}),
        # the study's files are the bottom layer: read by every package, reading none of them
        ("study_files", {"torch", "ray", "torchvision", "optuna", "plotly", "simclr_sweep", "reports", "trainers"}),
    ],
)
def test_package_does_not_import_forbidden_dependencies(package, forbidden):
    # Importing the whole package surface, not just __init__, so a stray import anywhere shows up.
    loaded = _modules_after_import(f"{package}; import pkgutil, importlib; "
                                   f"[importlib.import_module(m.name) for m in pkgutil.walk_packages({package}.__path__, '{package}.')]")
    assert not (loaded & forbidden), f"{package} imports {sorted(loaded & forbidden)}"


def test_the_validation_kit_and_the_vocabulary_import_without_torch():
    # `simclr-sweep validate` and every package read these; none may pay for torch.
    loaded = _modules_after_import("trainers.checks, study_files.vocabulary, study_files.atomic")
    assert not (loaded & {"torch", "pandas", "pyarrow", "ray"}), sorted(loaded & {"torch", "pandas", "pyarrow", "ray"})
