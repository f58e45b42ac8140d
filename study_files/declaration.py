"""A study folder's frozen declaration (``study.yaml``): whether a folder is a study, and the facts
every reader of its files needs (name, metric, goal, method).

`simclr_sweep.study` validates a declaration in full before a study runs; this reads the frozen copy
as it was run, leniently, so a report or status still works on a copied or partial folder.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

import yaml

from study_files.errors import StudyFilesError
from study_files.locations import Location, StudyFiles, cache_dir, is_remote, name_of, storage_errors
from study_files.vocabulary import STUDY_FILE
from study_files.yaml12 import Loader

DEFAULT_METRIC = "knn_top1"
GOALS = {"maximize": True, "max": True, "minimize": False, "min": False}


def not_a_study(location: Location, *missing: str) -> StudyFilesError:
    """The error for a folder that holds no study: names what it lacks (``study.yaml`` unless told)."""
    lacks = ", ".join(f"no {name}" for name in (missing or (STUDY_FILE,)))
    return StudyFilesError(str(location), f"not a study directory ({lacks}); give the folder `simclr-sweep run` created")


@dataclass(frozen=True)
class Declaration:
    """What a study's ``study.yaml`` says, read leniently; ``raw`` is the whole mapping ({} when missing)."""

    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, where: object = STUDY_FILE) -> Declaration:
        """The declaration in ``text``; text that is not YAML is a `StudyFilesError` naming ``where``."""
        try:
            loaded = yaml.load(text, Loader=Loader)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            at = f" at line {mark.line + 1}" if mark else ""
            raise StudyFilesError(str(where), f"damaged: not valid YAML{at}; restore the study's declaration from "
                                              "the file it was run with (its name: must be the folder's)") from None
        return cls(loaded if isinstance(loaded, dict) else {})

    @property
    def name(self) -> str | None:
        return str(self.raw["name"]) if self.raw.get("name") else None

    @property
    def metric(self) -> str:
        """The metric the study optimises (``metric:`` or ``metric.name``; knn_top1 when unsaid)."""
        metric = self.raw.get("metric")
        if isinstance(metric, dict) and metric.get("name"):
            return str(metric["name"])
        return metric if isinstance(metric, str) and metric else DEFAULT_METRIC

    @property
    def maximize(self) -> bool:
        """Whether a larger metric is better: ``metric.goal``, else every metric but ``loss``."""
        metric = self.raw.get("metric")
        goal = metric.get("goal") if isinstance(metric, dict) else None
        if goal is None:
            return self.metric != "loss"
        return GOALS.get(str(goal).lower(), True)

    @property
    def method(self) -> str:
        return str(self.raw.get("method", "unknown"))


def declaration_text(study_dir: Location, what: str = "STUDY_DIR") -> str:
    """The text of a study's frozen ``study.yaml``; `not_a_study` when the folder has none."""
    files = StudyFiles(study_dir)
    with storage_errors(study_dir, what):
        if files.is_file(STUDY_FILE):
            return files.read_text(STUDY_FILE)
    raise not_a_study(study_dir)


def read_declaration(study_dir: Location, what: str = "STUDY_DIR") -> Declaration:
    """A study's frozen declaration; `not_a_study` when the folder has none."""
    return Declaration.parse(declaration_text(study_dir, what), StudyFiles(study_dir).location(STUDY_FILE))


def study_name(study_dir: Location, declaration: Declaration) -> str:
    """The study's name: its declaration's, else its folder's."""
    return declaration.name or name_of(study_dir)


def claim_study(study_dir: Location, text: str, what: str = "--storage") -> None:
    """Make ``study_dir`` a new study's folder holding ``text`` as its ``study.yaml``; refuse a folder
    already used. A remote study's local copies (`cache_dir`) from an earlier study at the URI go."""
    files = StudyFiles(study_dir)
    with storage_errors(study_dir, what):
        if files.list(""):
            raise StudyFilesError(str(study_dir), "already holds a study; continue it with `simclr-sweep resume "
                                                  f"{study_dir}` or start a new one with --name")
        files.write_text(STUDY_FILE, text)
    if is_remote(study_dir):
        shutil.rmtree(cache_dir(str(study_dir)), ignore_errors=True)
