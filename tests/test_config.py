"""RunConfig validation, the cache key, and the command-line parsing helpers."""
from __future__ import annotations

import dataclasses
import math

import pytest

from memlib.config import DEFAULT_LR, FIELD_TYPES, OPTIMIZERS, RunConfig, config_from_pairs, parse_value

# (changes, field, value as it must appear in the message, a phrase describing what is allowed)
BAD = [
    (dict(noise=1.5), "noise", "1.5", "[0, 1]"),
    (dict(noise=-0.1), "noise", "-0.1", "[0, 1]"),
    (dict(noise=float("nan")), "noise", "nan", "[0, 1]"),
    (dict(noise=True), "noise", "True", "[0, 1]"),
    (dict(noise="0.1"), "noise", "'0.1'", "[0, 1]"),
    (dict(noise_kind="foo"), "noise_kind", "'foo'", "'symmetric', 'uniform'"),
    (dict(depth=0), "depth", "0", "integer in [1, 64]"),
    (dict(depth=65), "depth", "65", "integer in [1, 64]"),
    (dict(depth=2.5), "depth", "2.5", "integer"),
    (dict(depth=True), "depth", "True", "integer"),
    (dict(depth="4"), "depth", "'4'", "integer"),
    (dict(width=-3), "width", "-3", "integer in [1, 8192]"),
    (dict(init="kaiming"), "init", "'kaiming'", "'he', 'xavier', 'orthogonal'"),
    (dict(optimizer="adamw"), "optimizer", "'adamw'", "'sgd', 'momentum', 'adam'"),
    (dict(lr=0), "lr", "0", "positive number"),
    (dict(lr=-0.01), "lr", "-0.01", "positive number"),
    (dict(lr=float("nan")), "lr", "nan", "positive number"),
    (dict(lr=float("inf")), "lr", "inf", "positive number"),
    (dict(lr=11.0), "lr", "11.0", "up to 10"),
    (dict(lr=True), "lr", "True", "positive number"),
    (dict(n_train=256, batch_size=512), "batch_size", "512", "at most n_train=256"),
    (dict(batch_size=0), "batch_size", "0", "integer >= 1"),
    (dict(n_train=0), "n_train", "0", "[1, 50000]"),
    (dict(n_train=50_001), "n_train", "50001", "[1, 50000]"),
    (dict(epochs=0), "epochs", "0", "[1, 10000]"),
    (dict(depth=2, rep_layers=(3,)), "rep_layers", "(3,)", "1..2"),
    (dict(depth=2, rep_layers=(0, 1)), "rep_layers", "(0, 1)", "1..2"),
    (dict(rep_layers=()), "rep_layers", "()", "non-empty"),
    (dict(rep_layers=2), "rep_layers", "2", "tuple of hidden layers"),
    (dict(rep_layers=(1.0,)), "rep_layers", "(1.0,)", "tuple of hidden layers"),
    (dict(rep_epochs="some"), "rep_epochs", "'some'", "'all', 'ends', 'none'"),
    (dict(eval_size=0), "eval_size", "0", "[1, 10000]"),
    (dict(eval_size=10_001), "eval_size", "10001", "[1, 10000]"),
    (dict(probe_size=10_001), "probe_size", "10001", "[1, 10000]"),
    (dict(probe_size=0), "probe_size", "0", "[1, 10000]"),
    (dict(shift_degrees=-1), "shift_degrees", "-1", "[0, 180]"),
    (dict(shift_degrees=181), "shift_degrees", "181", "[0, 180]"),
    (dict(seed=-1), "seed", "-1", "integer in [0,"),
    (dict(seed=2**31), "seed", str(2**31), "integer in [0,"),
    (dict(seed=1.0), "seed", "1.0", "integer"),
    (dict(device="tpu"), "device", "'tpu'", "'auto', 'cpu', 'cuda'"),
    (dict(progress="yes"), "progress", "'yes'", "None, True or False"),
]


@pytest.mark.parametrize("changes,field,shown,allowed", BAD, ids=[f"{f}={s}" for _, f, s, _ in BAD])
def test_bad_value_names_field_value_and_allowed(changes, field, shown, allowed):
    """Every invalid field raises ValueError naming the field, the value and what is allowed."""
    with pytest.raises(ValueError) as err:
        RunConfig(**changes)
    msg = str(err.value)
    assert f"RunConfig.{field}={shown} " in msg
    assert allowed in msg


def test_per_layer_widths():
    """widths sets depth (or must agree with it); one width everywhere is the uniform config with the same key."""
    cfg = RunConfig(widths=(128, 512, 2048, 2048))
    assert cfg.depth == 4 and cfg.width is None and cfg.hidden_widths == (128, 512, 2048, 2048)
    assert RunConfig(widths=[128, 512], depth=2).widths == (128, 512)
    assert RunConfig(widths=(256,) * 4) == RunConfig() and RunConfig(widths=(256,) * 4).key() == RunConfig().key()
    assert RunConfig().hidden_widths == (256,) * 4 and RunConfig().widths is None
    assert RunConfig(depth=8).replace(widths=(64, 32)).depth == 2  # new widths bring their own depth
    assert cfg.replace(noise=0.6).hidden_widths == cfg.hidden_widths  # and keep it through other changes
    assert config_from_pairs(["widths=128,512,2048,2048", "optimizer=momentum"]).hidden_widths == (128, 512, 2048, 2048)
    with pytest.raises(ValueError, match="RunConfig.depth=3"):
        config_from_pairs(["widths=128,512", "depth=3"])
    assert RunConfig().key_dict().keys() >= {"depth", "width"} and "widths" not in RunConfig().key_dict()
    assert cfg.key_dict()["widths"] == [128, 512, 2048, 2048]


def test_replace_revalidates():
    """replace() builds a new config and validates it again."""
    cfg = RunConfig(depth=2)
    assert cfg.replace(depth=3).depth == 3 and cfg.depth == 2
    with pytest.raises(ValueError, match="RunConfig.depth=0"):
        cfg.replace(depth=0)


@pytest.mark.parametrize(
    "changes",
    [dict(depth=1), dict(depth=64, width=1), dict(n_train=1, batch_size=1), dict(n_train=50_000), dict(noise=0),
     dict(noise=1), dict(lr=10), dict(seed=2**31 - 1), dict(shift_degrees=0), dict(shift_degrees=180),
     dict(probe_size=10_000, eval_size=10_000), dict(rep_layers=(4,)), dict(epochs=10_000)],
    ids=str,
)
def test_boundary_values_are_accepted(changes):
    """The ends of every allowed range are valid."""
    cfg = RunConfig(**changes)
    for k, v in changes.items():
        assert getattr(cfg, k) == v


def test_numbers_are_normalised():
    """noise and shift_degrees are stored as floats; rep_layers as a sorted, de-duplicated tuple."""
    cfg = RunConfig(noise=1, shift_degrees=15, rep_layers=[3, 1, 3])
    assert type(cfg.noise) is float and type(cfg.shift_degrees) is float
    assert cfg.rep_layers == (1, 3)


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_lr_none_resolves_to_the_optimizer_default(opt):
    """lr=None uses DEFAULT_LR[optimizer], and its key equals the key with that lr written out."""
    cfg = RunConfig(optimizer=opt)
    assert cfg.lr is None and cfg.learning_rate == DEFAULT_LR[opt]
    assert cfg.key() == RunConfig(optimizer=opt, lr=DEFAULT_LR[opt]).key()
    assert cfg.key() != RunConfig(optimizer=opt, lr=DEFAULT_LR[opt] * 2).key()


def test_learning_rate_given_explicitly():
    """An explicit lr is used as a float."""
    assert RunConfig(lr=1).learning_rate == 1.0 and isinstance(RunConfig(lr=1).learning_rate, float)


def test_recorded_layers():
    """recorded_layers: all hidden layers by default, rep_layers when given, none when rep_epochs='none'."""
    assert RunConfig(depth=3).recorded_layers == (1, 2, 3)
    assert RunConfig(depth=3, rep_layers=(2,)).recorded_layers == (2,)
    assert RunConfig(depth=3, rep_layers=(2,), rep_epochs="none").recorded_layers == ()


# A different, valid value for every result-determining field of RunConfig().
KEY_CHANGES = dict(
    n_train=9_999, noise=0.1, noise_kind="uniform", depth=3, width=128, init="xavier", optimizer="sgd", lr=0.002,
    batch_size=64, epochs=11, stop_at=0.99, seed=1, probe_size=1_000, rep_layers=(1, 2), rep_epochs="ends",
    eval_size=5_000, shift_degrees=15.0, widths=(128, 512, 2048, 2048), inputs="symmetric",
)


def test_key_changes_cover_every_field():
    """KEY_CHANGES covers every RunConfig field except device and progress (update it when fields are added)."""
    assert set(KEY_CHANGES) | {"device", "progress"} == {f.name for f in dataclasses.fields(RunConfig)}


@pytest.mark.parametrize("field", sorted(KEY_CHANGES))
def test_key_changes_with_every_result_determining_field(field):
    """Changing any one result-determining field changes the cache key."""
    base = RunConfig()
    assert base.key() != base.replace(**{field: KEY_CHANGES[field]}).key()


@pytest.mark.parametrize("changes", [dict(device="cpu"), dict(device="cuda"), dict(progress=True),
                                     dict(progress=False)], ids=str)
def test_key_ignores_device_and_progress(changes):
    """device and progress do not change what a run produces, so they are not in the key."""
    assert RunConfig(**changes).key() == RunConfig().key()
    assert "device" not in RunConfig().key_dict() and "progress" not in RunConfig().key_dict()


def test_key_normalises_equivalent_configs():
    """Equivalent spellings share a key: rep_layers=None vs all layers; rep_layers ignored when nothing is recorded."""
    assert RunConfig(depth=3).key() == RunConfig(depth=3, rep_layers=(3, 2, 1)).key()
    assert RunConfig(rep_epochs="none").key() == RunConfig(rep_epochs="none", rep_layers=(1,)).key()
    assert RunConfig(noise=0).key() == RunConfig(noise=0.0).key()


def test_key_is_stable_text():
    """The key is 20 hex characters and the same for equal configs built separately."""
    k = RunConfig(noise=0.3, seed=7).key()
    assert len(k) == 20 and int(k, 16) >= 0
    assert k == RunConfig(seed=7, noise=0.3).key()


# ---------------------------------------------------------------- parse_value / config_from_pairs


@pytest.mark.parametrize(
    "name,text,expected",
    [("depth", "8", 8), ("depth", " 3 ", 3), ("noise", "0.4", 0.4), ("lr", "none", None), ("lr", "1e-3", 1e-3),
     ("rep_layers", "1,3", (1, 3)), ("rep_layers", "None", None), ("progress", "true", True),
     ("progress", "no", False), ("progress", "null", None), ("init", "xavier", "xavier")],
)
def test_parse_value(name, text, expected):
    """Command-line text becomes the field's type."""
    assert parse_value(name, text) == expected
    assert type(parse_value(name, text)) is type(expected)


@pytest.mark.parametrize("name,text", [("depth", "abc"), ("depth", "2.5"), ("epochs", "none"), ("noise", "lots"),
                                       ("progress", "maybe"), ("rep_layers", "1,x")])
def test_parse_value_bad_text(name, text):
    """Text that is not of the field's type raises ValueError naming the field and the text."""
    with pytest.raises(ValueError) as err:
        parse_value(name, text)
    assert f"RunConfig.{name}={text!r}" in str(err.value)


def test_parse_value_unknown_field():
    """An unknown key raises ValueError naming it and listing the allowed keys."""
    with pytest.raises(ValueError) as err:
        parse_value("foo", "1")
    assert "'foo'" in str(err.value) and "n_train" in str(err.value) and "shift_degrees" in str(err.value)


def test_config_from_pairs():
    """key=value strings build a validated config on top of a base."""
    cfg = config_from_pairs(["noise=0.4", "depth=8", "rep_layers=2,1", "lr=none", "optimizer=sgd"])
    assert (cfg.noise, cfg.depth, cfg.rep_layers, cfg.lr, cfg.optimizer) == (0.4, 8, (1, 2), None, "sgd")
    base = RunConfig(width=32)
    assert config_from_pairs(["depth=2"], base) == RunConfig(width=32, depth=2)
    assert config_from_pairs([]) == RunConfig()


@pytest.mark.parametrize(
    "pairs,needle",
    [(["noise"], "expected key=value, got 'noise'"), (["foo=1"], "'foo'"), (["depth=abc"], "RunConfig.depth='abc'"),
     (["noise=1.5"], "RunConfig.noise=1.5"), (["optimizer=adamw"], "RunConfig.optimizer='adamw'"),
     (["n_train=100"], "RunConfig.batch_size=128"), (["lr=nan"], "RunConfig.lr=nan"),
     (["noise=0.1", "depth=2", " noise = 0.2"], "RunConfig.noise is given twice (noise=0.1 and noise=0.2)")],
    ids=lambda v: v[0] if isinstance(v, list) else None,
)
def test_config_from_pairs_errors(pairs, needle):
    """Malformed pairs, unknown keys, bad text, invalid values, a key given twice: ValueError with a precise message."""
    with pytest.raises(ValueError) as err:
        config_from_pairs(pairs)
    assert needle in str(err.value)


def test_field_types_cover_all_fields():
    """FIELD_TYPES (used by the CLI) lists every RunConfig field and parse_value accepts each one's default text."""
    assert list(FIELD_TYPES) == [f.name for f in dataclasses.fields(RunConfig)]
    for f in dataclasses.fields(RunConfig):
        default = f.default
        text = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        value = parse_value(f.name, text)
        assert value == default or (isinstance(default, float) and math.isclose(value, default))
