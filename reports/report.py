"""``build_report(study_dir)``: the study's tables and declaration in, ``report/index.html`` out."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from reports.page import Section, render_page
from reports.sections.augmentations import effects_section, pairs_section
from reports.sections.curves import curves_section
from reports.sections.failures import failures_section
from reports.sections.overview import leaderboard_section, summary_section
from reports.study_data import StudyData, load_study

# The page's order; each builder returns None when the study did not vary what it shows.
SECTIONS: tuple[Callable[[StudyData], Section | None], ...] = (
    summary_section,
    leaderboard_section,
    curves_section,
    effects_section,
    pairs_section,
    failures_section,
)


def build_report(study_dir: Path) -> Path:
    """Write ``<study_dir>/report/index.html`` atomically from study.yaml and the tables; return it.

    Works on a finished study, on one still running, and on tables copied elsewhere.
    """
    data = load_study(Path(study_dir))
    sections = [s for s in (build(data) for build in SECTIONS) if s is not None]
    subtitle = f"{data.method} study of {data.metric} ({'maximize' if data.maximize else 'minimize'}), " \
               f"{len(data.trials)} trials"
    page = render_page(data.name, subtitle, sections, data.notes)
    target = Path(study_dir) / "report" / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
