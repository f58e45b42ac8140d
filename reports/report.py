"""``build_report(study_dir)``: the study's tables and declaration in, ``report/index.html`` out."""
from __future__ import annotations

from collections.abc import Callable

from reports.page import Section, render_page
from reports.sections.augmentations import effects_section, pairs_section
from reports.sections.baselines import baselines_section, embeddings_section
from reports.sections.choices import choice_sections, numeric_section, temperature_batch_section
from reports.sections.curves import curves_section
from reports.sections.failures import failures_section
from reports.sections.finetune import finetune_section
from reports.sections.objectives import objective_section
from reports.sections.overview import leaderboard_section, summary_section
from reports.sections.search import cost_section, history_section, importance_section, parallel_section
from reports.study_data import StudyData, load_study
from study_files.locations import Location, StudyFiles

REPORT_FILE = "report/index.html"

Builder = Callable[[StudyData], "Section | list[Section] | None"]

# The page's order; a builder returns None (or []) when the study did not vary what it shows.
SECTIONS: tuple[Builder, ...] = (
    summary_section,
    leaderboard_section,
    baselines_section,
    finetune_section,
    curves_section,
    embeddings_section,
    effects_section,
    pairs_section,
    choice_sections,
    temperature_batch_section,
    objective_section,
    numeric_section,
    importance_section,
    parallel_section,
    history_section,
    cost_section,
    failures_section,
)


def build_report(study_dir: Location, partial: str | None = None) -> Location:
    """Write ``<study_dir>/report/index.html`` whole from study.yaml and the tables; return where it is.

    Works on a finished study, on one still running, and on tables copied elsewhere; a remote study
    (``s3://...``) gets its report written there and its URI returned. ``partial``: why the study
    stopped short (the driver's Ctrl-C line), said at the top; trials left running say so too.
    """
    files = StudyFiles(study_dir)
    data = load_study(files.location())
    sections = [s for build in SECTIONS for s in _as_list(build(data))]
    subtitle = (f"{data.method} study of {data.metric} ({'maximize' if data.maximize else 'minimize'}), "
                f"{len(data.trials)} trials")
    unended = int((data.trials["status"] == "running").sum()) if len(data.trials) else 0
    if partial or unended:
        subtitle += f" (partial: {partial or f'{unended} trials not ended, interrupted or still running'})"
    return files.write_text(REPORT_FILE, render_page(data.name, subtitle, sections, data.notes))


def _as_list(result: Section | list[Section] | None) -> list[Section]:
    if result is None:
        return []
    return result if isinstance(result, list) else [result]
