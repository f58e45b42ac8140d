"""Every option fed values of the wrong type gives a one-line ConfigError naming it, never another
exception: a YAML file can hold a mapping, a list, null, a date or a huge integer anywhere."""

import dataclasses
import datetime

import pytest

from trainers import ConfigError, TrainConfig
from trainers.augmentation.kernels import AUGMENTATIONS

# Wrong for every option: YAML values of a shape no option takes.
ANYWHERE = [{"crop": 1}, [["crop"]], [{"crop": 1}], datetime.date(2020, 1, 1), [1, 2, 3], [None]]
# Wrong for an option of the given kind.
BY_KIND = {
    "int": [True, 2.5, "3", None, [3], 10.0],
    "float": [True, "0.5", None, [0.5], 10**400],
    "bool": [1, 0, "true", None, [True]],
    "str": [3, True, 1.5, None, ["cifar"]],
    "range": [0.5, "0.5", [0.5], [True, 1.0], [0.1, "x"], [0.1, 10**400], None],
    "augmentations": [3, True, None, [3], [None, "crop"], ("crop", ["flip"])],
    "augmentation_params": [[], "crop.p", None, 3, [("flip.p", 0.5)]],
    "odd_size": [True, 3.0, "3", [3]],
}


def _kind(name: str) -> str:
    fields = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    if name in ("augmentations", "augmentation_params"):
        return name
    if name in fields:
        return fields[name]  # the annotation as a string: int, float, bool or str
    if name == "crop.min_scale":
        return "float"
    augmentation, parameter = name.split(".")
    default = AUGMENTATIONS[augmentation].params[parameter].default
    if default is None:
        return "odd_size"
    return "range" if isinstance(default, tuple) else type(default).__name__


OPTIONS = [f.name for f in dataclasses.fields(TrainConfig)] + [name for name in TrainConfig.option_names() if "." in name]
CASES = [(name, value) for name in OPTIONS for value in ANYWHERE + BY_KIND[_kind(name)]]


def test_every_option_has_a_known_kind():
    assert {_kind(name) for name in OPTIONS} == set(BY_KIND)


@pytest.mark.parametrize("name, value", CASES, ids=[f"{n}={v!r:.30}" for n, v in CASES])
def test_a_wrongly_typed_value_is_a_one_line_config_error_naming_the_option(name, value):
    with pytest.raises(ConfigError) as info:  # any other exception type fails the test
        TrainConfig.from_dict({name: value})
    err = info.value
    # A mapping given as augmentation_params is read: its unknown key is the option named.
    expected = "crop" if name == "augmentation_params" and isinstance(value, dict) else name
    assert err.field == expected
    assert "\n" not in str(err) and len(str(err)) < 300


@pytest.mark.parametrize("values, expected", [
    ({"augmentations": [["crop"]]}, "augmentations: each entry must be an augmentation name (got ['crop'])"),
    ({"augmentations": [{"crop": 1}]}, "augmentations: each entry must be an augmentation name (got {'crop': 1})"),
    ({"augmentations": ["crop", None]}, "augmentations: each entry must be an augmentation name (got None)"),
    ({"augmentation_params": ["flip.p"]},
     "augmentation_params: must be a mapping of <augmentation>.<parameter> to values (got list)"),
    ({"augmentation_params": {1: 0.5, "flip.p": 0.5}},
     "1: unknown augmentation parameter; expected <augmentation>.<parameter> with an augmentation of crop, flip, "
     "color_jitter, grayscale, blur, rotate, brightness, invert, solarize, gaussian_noise, salt_and_pepper, "
     "cutout, standardize"),
    ({"lr": 10**400}, "lr: must be finite (got 100000000000000000000000000000000000000000000000000000000...)"),
    ({"blur.sigma": [0.1, {"x": 1}]}, "blur.sigma: must be a number (got dict)"),
    ({"dataset": ["cifar10"]}, "dataset: must be one of "),
])
def test_wrongly_typed_values_have_these_messages(values, expected):
    with pytest.raises(ConfigError) as info:
        TrainConfig.from_dict(values)
    assert str(info.value) == expected or (expected.endswith(" ") and str(info.value).startswith(expected))
