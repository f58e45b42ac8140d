"""The validation kit every option is checked with: one error class, rule builders, did-you-mean.

A rule is ``rule(field, value) -> value``: it returns the value as stored or raises ``ConfigError``
naming the field. ``trainers.config`` (training options), the augmentations' own parameters and
``simclr_sweep.study`` (the study language) all check with these. Standard library only, so the
study language can be validated without importing torch.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Callable, Iterable

import yaml

from study_files.yaml12 import Loader

Rule = Callable[[str, Any], Any]


class ConfigError(ValueError):
    """A refused value: ``str(err) == f"{field}: {message}"`` (the field is a YAML path where one is known)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message

    def __reduce__(self):
        # Pickled across processes (a Ray worker's error reaching the driver): rebuild from both parts.
        return ConfigError, (self.field, self.message)


def read_yaml(path: str | Path) -> Any:
    """The value in a YAML (or JSON) file: study and train files alike are read here.

    A missing, unreadable or malformed file is a ``ConfigError`` whose field is the file's path.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(str(path), "no such file")
    if path.is_dir():
        raise ConfigError(str(path), "is a directory, expected a YAML file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(str(path), f"cannot be read ({err.__class__.__name__})") from None
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """The value in YAML text read elsewhere (a remote file); a malformed one is a ``ConfigError`` naming ``source``."""
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError(source, f"not valid YAML{where}: {problem}") from None


def closest(key: str, options: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The option a misspelt ``key`` most likely meant, or None."""
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=cutoff)
    return close[0] if close else None


def type_name(value: Any) -> str:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return shown(value)
    return type(value).__name__


def shown(value: Any, limit: int = 60) -> str:
    """repr, cut to one short line (a YAML value can be any size)."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def boolean(field: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(field, f"must be true or false (got {type_name(value)})")
    return value


def string(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty string (got {type_name(value)})")
    return value


def integer(low: int, high: int | None = None) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, f"must be an integer (got {type_name(value)})")
        if value < low:
            raise ConfigError(field, f"must be >= {low} (got {value})")
        if high is not None and value > high:
            raise ConfigError(field, f"must be <= {high} (got {value})")
        return value
    return check


def number(low: float, *, inclusive: bool, high: float | None = None) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(field, f"must be a number (got {type_name(value)})")
        try:
            value = float(value)
        except OverflowError:  # an integer beyond float's range
            raise ConfigError(field, f"must be finite (got {type_name(value)})") from None
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(field, f"must be finite (got {value})")
        if value < low or (value == low and not inclusive):
            raise ConfigError(field, f"must be {'>=' if inclusive else '>'} {low:g} (got {value:g})")
        if high is not None and value >= high:
            raise ConfigError(field, f"must be < {high:g} (got {value:g})")
        return value
    return check


def choice(options: Callable[[], Any]) -> Callable[[str, Any], str]:
    def check(field: str, value: Any) -> str:
        valid = list(options())
        if value not in valid:
            raise ConfigError(field, f"must be one of {', '.join(valid)} (got {type_name(value)})")
        return value
    return check


def unit(field: str, value: Any) -> float:
    value = number(0.0, inclusive=True)(field, value)
    if value > 1.0:
        raise ConfigError(field, f"must be <= 1 (got {value:g})")
    return value


def pair(high: float | None = None) -> Callable[[str, Any], tuple[float, float]]:
    """A (low, high) pair with 0 < low <= high (<= `high`): a list of two numbers or "low,high"."""
    def check(field: str, value: Any) -> tuple[float, float]:
        parts = value.split(",") if isinstance(value, str) else value
        if isinstance(parts, (list, tuple)) and len(parts) == 2 and isinstance(value, str):
            try:
                parts = [float(p) for p in parts]
            except ValueError:
                parts = None
        if not isinstance(parts, (list, tuple)) or len(parts) != 2:
            raise ConfigError(field, f"must be a pair [low, high] (got {type_name(value)})")
        low, top = (number(0.0, inclusive=False)(field, v) for v in parts)
        if low > top:
            raise ConfigError(field, f"must have low <= high (got [{low:g}, {top:g}])")
        if high is not None and top > high:
            raise ConfigError(field, f"must have high <= {high:g} (got [{low:g}, {top:g}])")
        return (low, top)
    return check


def odd_size(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1 or value % 2 == 0:
        raise ConfigError(field, f"must be a positive odd integer, or null for 10% of the image side "
                                 f"(got {type_name(value)})")
    return value


def at_most(high: float) -> Callable[[str, Any], float]:
    def check(field: str, value: Any) -> float:
        value = number(0.0, inclusive=True)(field, value)
        if value > high:
            raise ConfigError(field, f"must be <= {high:g} (got {value:g})")
        return value
    return check


# --- the study language's structure (simclr_sweep.study) ----------------------------------------
# The study language words a refused value its own way ("must be a whole number (got string 'x')");
# its texts are pinned by tests and documented, so they stay, written here beside the trainer's.


def described(value: Any) -> str:
    """A YAML value as the study language names it: ``string 'x'``, ``number 3``, ``a list``, ``nothing``."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def did_you_mean(key: Any, options: Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for a near miss, else ``""``."""
    close = closest(key, options) if isinstance(key, str) else None
    return f"; did you mean '{close}'?" if close else ""


def hint(key: Any, options: Iterable[str]) -> str:
    """The near miss of ``key`` among ``options``, or every option when none is near."""
    options = list(options)
    return did_you_mean(str(key), options) or f"; expected one of {', '.join(options)}"


def unknown(field: str, what: str, key: Any, options: Iterable[str]) -> ConfigError:
    """``<field>: unknown <what>`` with the near miss, or every option when none is near."""
    return ConfigError(field, f"unknown {what}{hint(key, options)}")


def known_keys(field: str, spec: dict, allowed: Iterable[str]) -> None:
    """Refuse the first key of ``spec`` not in ``allowed``, at ``<field>.<key>``."""
    allowed = list(allowed)
    for key in spec:
        if key not in allowed:
            raise unknown(f"{field}.{key}" if field else str(key), "key", key, allowed)


def mapping(field: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(field, f"must be a mapping (got {described(value)})")
    return value


def text(field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(field, f"must be a non-empty string (got {described(value)})")
    return value


def whole_number(low: int | None = None) -> Callable[[str, Any], int]:
    def check(field: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(field, f"must be a whole number (got {described(value)})")
        if low is not None and value < low:
            raise ConfigError(field, f"must be >= {low} (got {value})")
        return value
    return check


def finite(field: str, value: Any) -> float:
    """Any finite number, as written (an int stays an int)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value \
            or value in (float("inf"), float("-inf")):
        raise ConfigError(field, f"must be a number (got {described(value)})")
    return value


def one_of(options: Iterable[str]) -> Callable[[str, Any], str]:
    options = tuple(options)

    def check(field: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ConfigError(field, f"must be one of {', '.join(options)} (got {described(value)})"
                                     f"{did_you_mean(value, options)}")
        return value
    return check
