"""The report's HTML: sections, escaped tables, figures, and the one self-contained page.

Everything that comes from the tables passes through ``html.escape`` here (or through plotly's
JSON, which escapes ``<`` and ``/``), so a trial error holding ``<script>`` is shown, never run.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import plotly.graph_objects as go
import plotly.offline

STATUS_COLOURS = {
    "completed": "#1f77b4",
    "early_stopped": "#8c8c8c",
    "diverged": "#d62728",
    "failed": "#ff7f0e",
    "running": "#2ca02c",
}
GOOD = "#2c7fb8"
NEUTRAL = "#bdbdbd"

# A small template instead of "plotly_white": validating and embedding that one in every figure
# cost most of a large report's build time and ~7 kB per chart.
_TEMPLATE = {"layout": {
    "paper_bgcolor": "white", "plot_bgcolor": "white", "hovermode": "closest",
    "colorway": ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"],
    "xaxis": {"gridcolor": "#ebedf0", "zerolinecolor": "#d5d8de", "linecolor": "#d5d8de", "automargin": True},
    "yaxis": {"gridcolor": "#ebedf0", "zerolinecolor": "#d5d8de", "linecolor": "#d5d8de", "automargin": True},
}}

_PLOT_CONFIG = {"displaylogo": False, "responsive": True,
                "modeBarButtonsToRemove": ["lasso2d", "select2d"]}


class Safe(str):
    """HTML built by this package from escaped parts; ``cell`` passes it through unescaped."""


@dataclass
class Section:
    """One part of the page: a title, a finding in one sentence, then figures or tables."""

    id: str
    title: str
    finding: str
    body: list[str] = field(default_factory=list)
    note: str = ""


def esc(value: object) -> str:
    """Text from the tables, made safe for HTML."""
    return html.escape("" if value is None else str(value), quote=True)


def is_missing(value: object) -> bool:
    """True for None, NaN and NaT (pandas' missing values), False for anything else."""
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def show(value: object) -> str:
    """A parameter value as a table shows it: floats to 4 significant digits, missing as blank."""
    if is_missing(value):
        return ""
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def cell(value: object) -> str:
    """A table cell's content: ``Safe`` passes through, anything else is escaped."""
    return value if isinstance(value, Safe) else esc(value)


def table_html(headers: Sequence[str], rows: Sequence[Sequence[object]], *, css_class: str = "") -> Safe:
    """An HTML table with every header and cell escaped (unless built as ``Safe``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in rows)
    return Safe(f'<div class="table-wrap"><table class="{esc(css_class)}"><thead><tr>{head}</tr></thead>'
                f"<tbody>{body}</tbody></table></div>")


def status_chip(status: str) -> Safe:
    """A coloured label for a trial status."""
    colour = STATUS_COLOURS.get(status, "#555")
    return Safe(f'<span class="chip" style="background:{colour}">{esc(status.replace("_", " "))}</span>')


def status_dot(status: str) -> Safe:
    """A small coloured dot for a trial status, named in its tooltip."""
    colour = STATUS_COLOURS.get(status, "#555")
    return Safe(f'<span class="dot" title="{esc(status)}" style="background:{colour}"></span>')


def style(fig: go.Figure, *, height: int = 420, **layout: object) -> go.Figure:
    """The report's common look: white background, compact margins, legend on top."""
    fig.update_layout(template=_TEMPLATE, height=height,
                      margin={"l": 60, "r": 20, "t": 30, "b": 50},
                      font={"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 12},
                      legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 0},
                      **layout)
    return fig


def figure_html(fig: go.Figure) -> Safe:
    """One figure as a div; plotly.js itself is embedded once by ``render_page``."""
    return Safe(fig.to_html(include_plotlyjs=False, full_html=False, config=_PLOT_CONFIG,
                            default_height=f"{fig.layout.height or 420}px"))


def render_page(title: str, subtitle: str, sections: Sequence[Section], notes: Sequence[str]) -> str:
    """The whole report: head with plotly.js inlined once, a contents bar, then every section."""
    nav = "".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in sections)
    note_html = "".join(f'<p class="note">{esc(n)}</p>' for n in notes)
    body = "\n".join(_section_html(s) for s in sections)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(title)} - simclr-sweep report</title>
<style>{_CSS}</style>
<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>
</head>
<body>
<header><h1>{esc(title)}</h1><p class="subtitle">{esc(subtitle)}</p><nav>{nav}</nav></header>
<main>
{note_html}
{body}
</main>
<footer>Generated by simclr-sweep from the study's tables.</footer>
</body>
</html>
"""


def _section_html(section: Section) -> str:
    note = f'<p class="note">{esc(section.note)}</p>' if section.note else ""
    parts = "\n".join(section.body)
    return (f'<section id="{esc(section.id)}"><h2>{esc(section.title)}</h2>'
            f'<p class="finding">{esc(section.finding)}</p>{note}\n{parts}</section>')


_CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --accent: #2c7fb8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink);
       background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 18px 32px 0; }
header h1 { margin: 0; font-size: 22px; font-weight: 600; }
.subtitle { margin: 4px 0 12px; color: #c5cad6; }
nav { display: flex; flex-wrap: wrap; gap: 2px 14px; padding-bottom: 10px; }
nav a { color: #9fd0f5; text-decoration: none; font-size: 13px; }
nav a:hover { text-decoration: underline; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 24px 40px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 20px;
          margin: 16px 0; }
h2 { margin: 0 0 6px; font-size: 17px; }
h3 { margin: 14px 0 6px; font-size: 14px; }
.finding { margin: 0 0 10px; padding: 8px 12px; border-left: 4px solid var(--accent);
           background: #eef5fb; font-weight: 500; }
.note { color: var(--muted); font-size: 12.5px; margin: 4px 0 10px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 7px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f0f2f6; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:first-child td { font-weight: 600; }
table.plain tbody tr:first-child td { font-weight: normal; }
.chip { display: inline-block; color: #fff; border-radius: 10px; padding: 0 8px; font-size: 12px;
        white-space: nowrap; margin: 1px 2px 1px 0; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; margin: 0 6px 0 2px; }
.trials { white-space: nowrap; font-size: 12px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(140px, 1fr)); gap: 8px; margin: 8px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .k { color: var(--muted); font-size: 12px; }
.card .v { font-size: 16px; font-weight: 600; }
pre { background: #f3f4f7; border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px;
      overflow-x: auto; font-size: 12.5px; white-space: pre-wrap; word-break: break-word; }
details summary { cursor: pointer; color: var(--accent); }
footer { text-align: center; color: var(--muted); font-size: 12px; padding: 0 0 24px; }
"""
