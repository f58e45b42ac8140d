"""The trainer package's boundaries, read from its source."""
import ast
from pathlib import Path

import trainers

ROOT = Path(trainers.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_trainers_takes_only_the_light_modules_of_study_files():
    # The stdlib-only words and write, and the YAML loader (yaml, which trainers.checks needs anyway).
    used = {name for path in ROOT.rglob("*.py") for name in _imported_modules(path) if name.startswith("study_files")}
    assert used <= {"study_files.vocabulary", "study_files.atomic", "study_files.yaml12"}, sorted(used)


def test_every_trainers_module_import_names_a_module_that_exists():
    for path in ROOT.rglob("*.py"):
        for name in _imported_modules(path):
            if name.startswith("trainers."):
                parts = name.split(".")
                target = ROOT.joinpath(*parts[1:])
                assert target.with_suffix(".py").is_file() or (target / "__init__.py").is_file(), (path, name)
