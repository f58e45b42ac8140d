"""The one YAML loader the project reads every file with (studies, train files, frozen declarations)."""
from __future__ import annotations

import re

import yaml


class Loader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-3`` (no dot) as a string; every ML config means the number, as YAML 1.2 does."""


Loader.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
                             list("-+0123456789."))
