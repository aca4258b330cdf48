import math

import pytest

from tui_gan.core.config import CPU_PRESET, TrainConfig, parse_device
from tui_gan.core.errors import UserError


def test_defaults_are_the_tutorials():
    c = TrainConfig()
    assert (c.nz, c.ngf, c.ndf) == (100, 64, 64)
    assert c.lr_g == c.lr_d == 2e-4
    assert c.beta1 == 0.5
    assert c.batch_size == 128
    assert c.image_size == 64
    assert c.epochs == 5
    assert c.seed == 999
    assert c.data == "builtin"


def test_every_field_has_a_docstring():
    import ast
    import inspect

    import tui_gan.core.config as module

    tree = ast.parse(inspect.getsource(module))
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "TrainConfig")
    documented = set()
    body = cls.body
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant):
            documented.add(node.target.id)
    from dataclasses import fields

    assert {f.name for f in fields(TrainConfig)} == documented


def test_toml_round_trip(tmp_path):
    c = TrainConfig(image_size=32, lr_g=1e-3, max_steps=50, data="/some/where \"quoted\"")
    path = tmp_path / "c.toml"
    path.write_text(c.to_toml())
    again = TrainConfig.from_dict(TrainConfig.read_toml(path))
    assert again == c


def test_toml_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        TrainConfig.read_toml(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("image_size = [")
    with pytest.raises(UserError, match="not valid TOML"):
        TrainConfig.read_toml(bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("learning_rate = 0.1\n")
    with pytest.raises(UserError, match="unknown setting 'learning_rate'"):
        TrainConfig.read_toml(unknown)


@pytest.mark.parametrize(
    "field,value",
    [
        ("lr_g", 0.0),
        ("lr_d", -1e-4),
        ("lr_g", math.nan),
        ("lr_d", math.inf),
        ("batch_size", 0),
        ("epochs", -2),
        ("nz", 0),
        ("ngf", 1.5),
        ("ndf", True),
        ("image_size", 48),
        ("channels", 2),
        ("beta1", 1.0),
        ("device", "tpu"),
        ("max_steps", 0),
    ],
)
def test_validation_rejects_bad_values(field, value):
    c = TrainConfig()
    setattr(c, field, value)
    with pytest.raises(UserError) as info:
        c.validate()
    assert "\n" not in str(info.value)


def test_cpu_preset_respects_explicit_settings():
    c = TrainConfig()
    c.apply_preset("cuda", set())
    assert c.preset == "tutorial" and c.image_size == 64
    c.apply_preset("cpu", {"image_size"})
    assert c.preset == "cpu"
    assert c.image_size == 64  # explicit wins
    assert c.ngf == CPU_PRESET["ngf"] and c.ndf == CPU_PRESET["ndf"]
    assert (c.lr_g, c.lr_d, c.epochs) == (5e-4, 5e-4, 8)
    c = TrainConfig(lr_g=1e-4)
    c.apply_preset("cpu", {"lr_g"})
    assert (c.lr_g, c.lr_d) == (1e-4, 5e-4)  # an explicit learning rate wins; the other follows the preset


def test_parse_device():
    assert parse_device("auto") == ("auto", None)
    assert parse_device("cuda:1") == ("cuda", 1)
    assert parse_device("mps") == ("mps", None)
    for bad in ("gpu", "cuda:x", "cpu:0", ""):
        with pytest.raises(UserError):
            parse_device(bad)


def test_a_conditional_runs_class_names_survive_its_config_toml_in_order(tmp_path):
    """Class names are folder names: quotes, backslashes, newlines and "10" before "2" must
    come back exactly as they were, in their order (label i is class_names[i])."""
    names = ["10", "2", 'say "cheese"', "back\\slash", "two\nlines", "café"]
    config = TrainConfig(conditional=True, class_names=names, data='C:\\data "x"')
    path = tmp_path / "config.toml"
    path.write_text(config.to_toml())
    back = TrainConfig.from_dict(TrainConfig.read_toml(path))
    assert back.class_names == names and back.conditional and back.data == config.data


@pytest.mark.parametrize("settings, message", [
    ({"class_names": ["a", "b"]}, "class_names belong to a conditional run"),
    ({"conditional": True, "class_names": ["a"]}, "two or more distinct names"),
    ({"conditional": True, "class_names": ["a", "a"]}, "two or more distinct names"),
    ({"conditional": True, "class_names": ["a", ""]}, "two or more distinct names"),
    ({"conditional": True, "class_names": "ab"}, "two or more distinct names"),
    ({"conditional": "yes"}, "conditional must be true or false"),
])
def test_bad_conditional_settings_are_one_line_errors(settings, message):
    with pytest.raises(UserError, match=message):
        TrainConfig.from_dict(settings)
