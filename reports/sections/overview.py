"""The summary (declaration, dates, statuses, cost, best configuration and how to reproduce it)
and the leaderboard of configurations."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd
import yaml

from reports.page import Safe, Section, esc, is_missing, show, status_chip, status_dot, table_html
from reports.study_data import StudyData, split_augmentations
from study_files.schema import AUGMENTATIONS_COLUMN, PARAM_PREFIX
from study_files.vocabulary import STATUSES

LEADERBOARD_ROWS = 50


def summary_section(data: StudyData) -> Section:
    """Study name, method, dates, trials by status, GPU-hours, best configuration, reproduce."""
    counts = data.trials["status"].value_counts()
    chips = " ".join(f"{status_chip(s)} {int(counts[s])}" for s in STATUSES if s in counts)
    cards = [("metric", f"{data.metric} ({'max' if data.maximize else 'min'})"),
             ("method", data.method), ("trials", str(len(data.trials))),
             ("started", _when(data.trials["started_at"].min())),
             ("last ended", _when(data.trials["ended_at"].max())),
             ("GPU-hours", f"{data.trials['gpu_s'].fillna(0).sum() / 3600:.2f}"),
             ("wall-clock hours (sum)", f"{data.trials['wall_s'].fillna(0).sum() / 3600:.2f}")]
    body = [Safe('<div class="cards">' + "".join(
        f'<div class="card"><div class="k">{esc(k)}</div><div class="v">{esc(v)}</div></div>'
        for k, v in cards) + "</div>"), Safe(f"<p>Trials by status: {chips or 'none yet'}</p>")]
    body += _best_and_reproduce(data)
    body.append(Safe("<details><summary>The study's declaration (study.yaml)</summary><pre>"
                     + esc(yaml.safe_dump(data.declaration, sort_keys=False) if data.declaration else "(missing)")
                     + "</pre></details>"))
    return Section("summary", "Summary", _summary_finding(data), body)


def leaderboard_section(data: StudyData) -> Section | None:
    """Configurations best first: mean, std and 95% CI of the score over seeds, with trial ids."""
    configs = data.configs
    if configs.empty:
        return None
    shown = configs.head(LEADERBOARD_ROWS)
    params = data.varying + ([AUGMENTATIONS_COLUMN] if data.augmentations else [])
    headers = ["#", "config_id", *[data.label(p) for p in params], "seeds",
               f"mean {data.metric}", "std", "95% CI", "trials"]
    rows = []
    for rank, row in enumerate(shown.to_dict("records"), start=1):
        trials = Safe('<span class="trials">' + "<br>".join(
            f"{status_dot(s)}{esc(t)}" for t, s in zip(row["trial_ids"], row["statuses"])) + "</span>")
        rows.append([rank, row["name"], *[show(row.get(p)) for p in params], row["n"],
                     data.fmt(row["mean"]), data.fmt(row["std"]), _ci(data, row["ci_lo"], row["ci_hi"]), trials])
    note = ("Score = each trial's best " + data.metric + " over its epochs; failed trials are left out. "
            "The 95% CI is Student's t over the seeds of a configuration; a trial's dot is its status "
            "(hover for its name).")
    if len(configs) > LEADERBOARD_ROWS:
        note += f" Showing the best {LEADERBOARD_ROWS} of {len(configs)} configurations."
    return Section("leaderboard", "Leaderboard", _leaderboard_finding(data), [table_html(headers, rows)], note)


def best_trial(data: StudyData) -> pd.Series:
    """The best-scoring trial of the best configuration (by mean over seeds): `study_files.best`'s."""
    return pd.Series(data.best.trial)


def best_config(data: StudyData) -> dict[str, Any]:
    """The best configuration as a ``simclr-sweep train`` config: ``param.*`` unflattened, plus the
    seed of its best trial."""
    best = best_trial(data)
    config: dict[str, Any] = {}
    for column in data.trials.columns:
        if not column.startswith(PARAM_PREFIX) or is_missing(best[column]):
            continue
        value = best[column]
        if column == AUGMENTATIONS_COLUMN:
            value = split_augmentations(value)
        # A column names its option whole: `param.color_jitter.strength` is the option `color_jitter.strength`.
        config[column[len(PARAM_PREFIX):]] = _plain(value)
    if not is_missing(best.get("seed")):
        config["seed"] = int(best["seed"])
    return config


def _best_and_reproduce(data: StudyData) -> list[str]:
    if data.scored.empty:
        return [Safe("<p>No trial has reported the metric yet.</p>")]
    best = best_trial(data)
    top = data.configs.iloc[0]
    config_yaml = yaml.safe_dump(best_config(data), sort_keys=False)
    run_name = best["trial_id"] if is_missing(best["config_id"]) else best["config_id"]
    command = f"simclr-sweep train best_config.yaml --out runs/{run_name}"
    seeds = f" over {int(top['n'])} seeds; its best seed, trial {best['trial_id']}, reached " \
            f"{data.fmt(best['score'])}" if top["n"] > 1 else f" (trial {best['trial_id']})"
    return [Safe(f"<h3>Best configuration: {esc(top['name'])}, {esc(data.metric)} "
                 f"{esc(data.fmt(top['mean']))}{esc(seeds)}</h3>"),
            Safe("<p>Reproduce it: save this as <code>best_config.yaml</code> and run "
                 f"<code>{esc(command)}</code></p><pre class=\"config\">{esc(config_yaml)}</pre>")]


def _summary_finding(data: StudyData) -> str:
    done = int((data.trials["status"] != "running").sum())  # load_study reads an unknown status as running
    if data.scored.empty:
        return f"{len(data.trials)} trials so far ({done} finished); none has reported {data.metric} yet."
    top = data.configs.iloc[0]
    spread = ""
    if top["n"] > 1:
        spread = f" ± {data.fmt(top['std'])} over {int(top['n'])} seeds"
    article = "an" if data.method[:1].lower() in ("a", "e", "i", "o", "u") else "a"
    return (f"{len(data.trials)} trials ({done} finished) of {article} {data.method} study; the best configuration "
            f"{top['name']} reaches {data.metric} {data.fmt(top['mean'])}{spread}.")


def _leaderboard_finding(data: StudyData) -> str:
    configs = data.configs
    top = configs.iloc[0]
    if len(configs) == 1:
        return f"One configuration so far: {data.metric} {data.fmt(top['mean'])} over {int(top['n'])} trial(s)."
    second = configs.iloc[1]
    gap = abs(top["mean"] - second["mean"])
    overlap = (not math.isnan(top["ci_lo"]) and not math.isnan(second["ci_hi"])
               and _intervals_overlap(top, second))
    verdict = ("their 95% intervals overlap, so the order of the top two is not settled"
               if overlap else "ahead of the runner-up by")
    if overlap:
        return (f"{top['name']} leads with {data.fmt(top['mean'])}, {data.fmt(gap)} above "
                f"{second['name']}, but {verdict}.")
    return f"{top['name']} leads with {data.fmt(top['mean'])}, {verdict} {data.fmt(gap)} {data.metric}."


def _intervals_overlap(a: pd.Series, b: pd.Series) -> bool:
    return bool(a["ci_lo"] <= b["ci_hi"] and b["ci_lo"] <= a["ci_hi"])


def _ci(data: StudyData, lo: float, hi: float) -> str:
    return "n/a" if math.isnan(lo) else f"[{data.fmt(lo)}, {data.fmt(hi)}]"


def _when(stamp: object) -> str:
    if is_missing(stamp):
        return "n/a"
    return pd.Timestamp(stamp).strftime("%Y-%m-%d %H:%M UTC")


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalar -> Python, so yaml writes it plainly
    return item() if callable(item) and not isinstance(value, (str, list)) else value

