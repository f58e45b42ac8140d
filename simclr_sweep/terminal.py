"""Text from a trial (parameter values, errors) made safe to print: no control sequence reaches the terminal."""

from __future__ import annotations

import re

# C0 controls (newline and tab included: each printed item stays on its line), DEL, C1 controls.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def safe(value: object) -> str:
    """``str(value)`` with every control character written as its escape (``\\x1b``, ``\\n``)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(value))
