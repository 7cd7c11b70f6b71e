import dataclasses

import numba
import pytest

from fastmlp.cli import build_parser
from fastmlp.config import FIELDS, TrainConfig, parse_sizes, read_toml
from fastmlp.schedules import Constant, Cyclic


def test_defaults_are_the_study():
    c = TrainConfig().validate()
    assert (c.sizes, c.batch_norm, c.init, c.lam) == ("auto-50-50-auto", True, "he", 0.005)
    assert (c.eta_min, c.eta_max, c.ns_epochs, c.ns, c.cycles, c.batch) == (1e-5, 1e-1, 5, None, 2, 100)
    assert c.check_data(45000, 3072, 10) == [3072, 50, 50, 10]
    s = c.make_schedule(45000 // 100)
    assert isinstance(s, Cyclic) and s.ns == 2250 and s.total_steps == 9000


def test_half_cycle_in_steps_wins_over_epochs():
    assert TrainConfig(ns=800).half_cycle(450) == 800
    assert TrainConfig(ns_epochs=2.5).half_cycle(450) == 1125
    s = TrainConfig(schedule="constant", eta=0.03, ns=10, cycles=3).make_schedule(99)
    assert isinstance(s, Constant) and s.total_steps == 60 and s.eta(59) == 0.03


def test_every_field_has_exactly_one_train_flag_with_the_same_default():
    parser = build_parser()
    train = next(a for a in parser._subparsers._group_actions[0].choices.items() if a[0] == "train")[1]
    flags = {a.dest: a for a in train._actions if a.option_strings}
    for f in dataclasses.fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in flags[f.name].option_strings
    args = train.parse_args([])
    assert not any(hasattr(args, name) for name in FIELDS)   # unset flags leave file values alone
    assert TrainConfig.from_sources(("flags", {})) == TrainConfig()


@pytest.mark.parametrize("changes, pattern", [
    (dict(eta_min=0.2, eta_max=0.1), r"^eta_min must be <= eta_max; got eta_min=0.2, eta_max=0.1\.$"),
    (dict(lam=-0.1), r"^lam must be a finite number >= 0; got -0.1\.$"),
    (dict(ns=0), r"^ns must be an integer in \[1, 5000000\]; got 0\.$"),
    (dict(ns_epochs=0), r"^ns_epochs must be a number in \(0, 1000000\]; got 0\.$"),
    (dict(cycles=0), r"^cycles must be an integer in \[1, 5000000\]; got 0\.$"),
    (dict(batch=0), r"^batch must be an integer >= 1; got 0\.$"),
    (dict(batch=2.5), r"^batch must be an integer >= 1; got 2.5\.$"),
    (dict(eta_max=float("inf")), r"^eta_max must be a finite number > 0; got inf\.$"),
    (dict(seed=-1), r"^seed must be an integer in \[0, 9223372036854775807\]; got -1\.$"),
    (dict(n_val=0), r"^n_val must be an integer >= 1; got 0\.$"),
    (dict(n_train=0), r"^n_train must be an integer >= 1; got 0\.$"),
    (dict(eval_every=-5), r"^eval_every must be an integer >= 0; got -5\.$"),
    (dict(train_eval=True), r"^train_eval must be an integer >= 0; got True\.$"),
    (dict(threads=0), r"^threads must be an integer in \[1, \d+\]; got 0\.$"),
    (dict(threads=numba.config.NUMBA_NUM_THREADS + 1), r"^threads must be an integer in \[1, \d+\]"),
    (dict(split="a4"), r"^split must be one of a2, a3; got 'a4'\.$"),
    (dict(dtype="float16"), r"^dtype must be one of float32, float64; got 'float16'\.$"),
    (dict(schedule="step"), r"^schedule must be one of cyclic, constant, onecycle; got 'step'\.$"),
    (dict(epochs=20), r"^epochs sets the length of the constant and onecycle schedules; a cyclic run "
                      r"\(--schedule cyclic, the default\).*drop --epochs .*got epochs=20\.$"),
    (dict(schedule="onecycle", epochs=0), r"^epochs must be an integer in \[1, 1000000\]; got 0\.$"),
    (dict(pct_start=1.5), r"^pct_start must be a number in \(0, 1\); got 1.5\.$"),
    (dict(div_factor=0.0), r"^div_factor must be a finite number > 0; got 0.0\.$"),
    (dict(cycle_momentum="no"), r"^cycle_momentum must be true or false; got 'no'\.$"),
    (dict(dataset="cifar100"), r"^dataset must be one of cifar10, fashion-mnist, sample or a path "
                               r"ending in \.npz; got 'cifar100'\.$"),
    (dict(init="glorot"), r"init must be one of he, he_uniform, xavier, xavier_normal, xavier_uniform, lecun or a positive float sigma"),
    (dict(sizes="3072-x-10"), r"^sizes must be at least two positive widths .*got '3072-x-10'\.$"),
    (dict(sizes="3072-auto-10"), r"sizes must be .*'auto' allowed only at either end"),
    (dict(sizes="10"), r"sizes must be at least two"),
    (dict(sizes=[3072, 0, 10]), r"got \[3072, 0, 10\]"),
    (dict(batch_norm="yes"), r"^batch_norm must be true or false; got 'yes'\.$"),
])
def test_validate_names_the_field_the_rule_and_the_value(changes, pattern):
    with pytest.raises(ValueError, match=pattern):
        TrainConfig(**changes).validate()


def test_epochs_set_the_length_of_constant_and_onecycle_runs():
    for schedule in ("constant", "onecycle"):
        assert TrainConfig(schedule=schedule, epochs=20).validate().make_schedule(600).total_steps == 12000
    assert TrainConfig(schedule="onecycle").make_schedule(450).total_steps == 2 * 2250 * 2


def test_checks_that_need_the_data():
    with pytest.raises(ValueError, match=r"^batch must be <= the number of training rows \(50\); "
                                         r"got batch=100\."):
        TrainConfig().check_data(50, 3072, 10)
    with pytest.raises(ValueError, match=r"sizes must start with the data's 784 input features .*got "
                                         r"sizes='3072-50-10', whose input features width is 3072"):
        TrainConfig(sizes="3072-50-10").check_data(1000, 784, 10)
    with pytest.raises(ValueError, match=r"whose classes width is 5"):
        TrainConfig(sizes="auto-50-5").check_data(1000, 784, 10)
    with pytest.raises(ValueError, match=r"ns_epochs \* steps per epoch must round to at least 1"):
        TrainConfig(ns_epochs=0.01).check_data(1000, 784, 10)
    assert TrainConfig(sizes=[784, 20, "auto"]).check_data(1000, 784, 10) == [784, 20, 10]


def test_parse_sizes():
    assert parse_sizes("auto-50-50-auto") == ["auto", 50, 50, "auto"]
    assert parse_sizes(" 3072 - 10 ") == [3072, 10]
    assert parse_sizes((5, 4)) == [5, 4]


def test_from_toml(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('dataset = "sample"\nsizes = [784, 30, "auto"]\nlam = 0.01\nns = 100\n'
                    'batch_norm = false\ninit = 0.01\n')
    c = TrainConfig.from_toml(path).validate()
    assert (c.dataset, c.sizes, c.lam, c.ns, c.batch_norm, c.init) == \
        ("sample", [784, 30, "auto"], 0.01, 100, False, 0.01)


@pytest.mark.parametrize("text, pattern", [
    ("lamda = 0.1\n", r"run.toml: unknown config key 'lamda'\. Did you mean 'lam'\?"),
    ("colour = 1\n", r"unknown config key 'colour'\. Known keys: dataset, data_dir"),
    ("lam = \n", r"run.toml is not valid TOML"),
    ("ns = 5\nns_epochs = 2\n", r"give the half-cycle as ns \(steps\) or as ns_epochs, not both"),
])
def test_bad_toml(tmp_path, text, pattern):
    path = tmp_path / "run.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=pattern):
        TrainConfig.from_sources((str(path), read_toml(path)))


def test_missing_toml(tmp_path):
    with pytest.raises(ValueError, match=r"config file .*nope.toml does not exist"):
        TrainConfig.from_toml(tmp_path / "nope.toml")


def test_later_sources_win_and_ns_kinds_replace_each_other():
    c = TrainConfig.from_sources(("file", {"lam": 0.1, "ns": 100, "batch": 50}), ("flags", {"lam": 0.2}))
    assert (c.lam, c.ns, c.batch) == (0.2, 100, 50)
    c = TrainConfig.from_sources(("file", {"ns": 100}), ("flags", {"ns_epochs": 3.0}))
    assert (c.ns, c.ns_epochs) == (None, 3.0)
    c = TrainConfig.from_sources(("file", {"ns_epochs": 3.0}), ("flags", {"ns": 40}))
    assert c.half_cycle(1000) == 40
