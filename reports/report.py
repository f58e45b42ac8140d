"""``build_report(study_dir)``: the study's tables and declaration in, ``report/index.html`` out."""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

from reports.page import Section, render_page
from reports.sections.augmentations import effects_section, pairs_section
from reports.sections.baselines import baselines_section, embeddings_section
from reports.sections.choices import choice_sections, numeric_section, temperature_batch_section
from reports.sections.curves import curves_section
from reports.sections.failures import failures_section
from reports.sections.overview import leaderboard_section, summary_section
from reports.sections.search import cost_section, history_section, importance_section, parallel_section
from reports.study_data import StudyData, load_study
from reports.tables import StudyFiles, is_remote

Builder = Callable[[StudyData], "Section | list[Section] | None"]

# The page's order; a builder returns None (or []) when the study did not vary what it shows.
SECTIONS: tuple[Builder, ...] = (
    summary_section,
    leaderboard_section,
    baselines_section,
    curves_section,
    embeddings_section,
    effects_section,
    pairs_section,
    choice_sections,
    temperature_batch_section,
    numeric_section,
    importance_section,
    parallel_section,
    history_section,
    cost_section,
    failures_section,
)


def build_report(study_dir: Path | str) -> Path | str:
    """Write ``<study_dir>/report/index.html`` atomically from study.yaml and the tables; return it.

    Works on a finished study, on one still running, and on tables copied elsewhere. A remote
    study (``s3://...``) gets its report written there, in one PUT, and its URI returned.
    """
    remote = isinstance(study_dir, str) and is_remote(study_dir)
    data = load_study(study_dir if remote else Path(study_dir))
    sections = [s for build in SECTIONS for s in _as_list(build(data))]
    subtitle = (f"{data.method} study of {data.metric} ({'maximize' if data.maximize else 'minimize'}), "
                f"{len(data.trials)} trials")
    page = render_page(data.name, subtitle, sections, data.notes)
    if remote:
        return StudyFiles(study_dir).write_text("report/index.html", page)
    target = Path(study_dir) / "report" / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _as_list(result: Section | list[Section] | None) -> list[Section]:
    if result is None:
        return []
    return result if isinstance(result, list) else [result]
