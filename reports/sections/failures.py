"""Failed and diverged trials, each with its configuration and its error, shown as text."""
from __future__ import annotations

from collections import Counter

import pandas as pd

from reports.page import Safe, Section, esc, is_missing, show, status_chip, table_html
from reports.study_data import StudyData

MAX_ROWS = 100


def failures_section(data: StudyData) -> Section | None:
    """A table of failed and diverged trials; None when every trial is healthy."""
    bad = data.trials[data.trials["status"].isin(("failed", "diverged"))]
    if bad.empty:
        return None
    params = data.varying
    rows = []
    for row in bad.head(MAX_ROWS).to_dict("records"):
        error = row.get("error")
        if isinstance(error, str) and error:
            error_html = Safe(f"<pre>{esc(error)}</pre>")
        else:
            diverged = row["status"] == "diverged"
            error_html = f"non-finite loss at epoch {_epochs(row.get('epochs_run'))}" if diverged else ""
        rows.append([row["trial_id"], status_chip(row["status"]), row["config_id"],
                     *[show(row.get(p)) for p in params], _epochs(row.get("epochs_run")), error_html])
    table = table_html(["trial", "status", "config_id", *[data.label(p) for p in params], "epochs", "error"],
                       rows, css_class="plain")
    note = f"Showing {MAX_ROWS} of {len(bad)}." if len(bad) > MAX_ROWS else ""
    return Section("failures", "Failed and diverged trials", _finding(data, bad), [table], note)


def _finding(data: StudyData, bad: pd.DataFrame) -> str:
    counts = bad["status"].value_counts()
    parts = [f"{int(counts[s])} {s}" for s in ("failed", "diverged") if s in counts]
    sentence = f"{' and '.join(parts)} of {len(data.trials)} trials"
    errors = [e.strip().splitlines()[0] for e in bad["error"].dropna() if isinstance(e, str) and e.strip()]
    if errors:
        common, times = Counter(errors).most_common(1)[0]
        sentence += f"; the most common error ({times}x) is \"{common[:160]}\""
    shared = _shared_value(data, bad[bad["status"] == "diverged"])
    if shared:
        sentence += f"; every diverged trial had {shared}"
    return sentence + "."


def _shared_value(data: StudyData, diverged: pd.DataFrame) -> str:
    """A parameter value every diverged trial shares but other trials do not all share."""
    if len(diverged) < 2:
        return ""
    for column in data.varying:
        values = diverged[column].dropna().unique()
        if len(values) == 1 and data.trials[column].nunique() > 1:
            return f"{data.label(column)} = {values[0]}"
    return ""


def _epochs(value: object) -> str:
    return "" if is_missing(value) else str(int(value))
