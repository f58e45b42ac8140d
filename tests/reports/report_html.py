"""Reading a built report back for tests: its sections, their findings and their figures' data."""
from __future__ import annotations

import base64
import html
import json
import re

import numpy as np

_NEW_PLOT = re.compile(r'Plotly\.newPlot\(\s*"[^"]+",\s*')


def section_ids(page: str) -> set[str]:
    """The ids of the page's sections."""
    return set(re.findall(r'<section id="([^"]+)"', page))


def section(page: str, section_id: str) -> str:
    """One section's HTML, from its opening tag to its end."""
    start = page.index(f'<section id="{section_id}">')
    return page[start:page.index("</section>", start)]


def finding(page: str, section_id: str) -> str:
    """A section's one-sentence finding, as text."""
    match = re.search(rf'<section id="{section_id}"><h2>.*?</h2><p class="finding">(.*?)</p>', page)
    assert match, f"no section {section_id}"
    return html.unescape(match.group(1))


def traces(section_html: str) -> list[dict]:
    """The traces of every figure in a section, with plotly's base64 typed arrays as numpy arrays."""
    decoder = json.JSONDecoder()
    found = []
    for match in _NEW_PLOT.finditer(section_html):
        data, _ = decoder.raw_decode(section_html, match.end())
        found += [_decode(trace) for trace in data]
    return found


def _decode(value):
    if isinstance(value, dict) and set(value) >= {"dtype", "bdata"}:
        array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return array.reshape([int(n) for n in shape.split(",")]) if shape else array
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value
