"""The rules a TrainConfig must obey: the choices and bounds of its fields, and the checks
(`validate`, without the data; `check_data`, with it) that refuse a bad one in one line.

They are apart from fastmlp/config.py, which holds the fields themselves and where a config comes
from (defaults, a TOML file, the command line), so that each file reads whole: there, what a run can
be told; here, what it refuses and why.  TrainConfig.validate and .check_data call these; other
modules import the names below from fastmlp.config, as before.
"""
import dataclasses
import math
import numbers

from ._checks import MAX_WIDTH, check_nonnegative
from .network import check_dropout, check_init

DATASETS = ("cifar10", "fashion-mnist", "sample")
SPLITS = ("a2", "a3")
DTYPES = ("float32", "float64")
SCHEDULES = ("cyclic", "constant", "onecycle")
STANDARDIZE = ("auto", "pixel", "channel")
# Bounds on the flags that size what a run allocates, so that a typo is refused in one line instead
# of exhausting memory.  A run keeps eta and the batch loss of every step (History, steps.csv: ~50
# bytes a step in memory and on disk, rewritten at every checkpoint): 10 million steps is ~0.5 GB, and
# 22,000 epochs of the CIFAR-10 study.
MAX_STEPS = 10_000_000
MAX_EPOCHS = 1_000_000          # ns_epochs and epochs; the step bound above usually bites first
MAX_SEED = 2**63 - 1            # seeds reach Numba kernels, which type a Python int as int64
MAX_LAYERS = 64                 # weight layers; far deeper than a plain MLP trains
MAX_PARAMETERS = 100_000_000    # see check_parameters


def validate(config):
    """Check every field of `config` (a TrainConfig) that can be checked without the data; return it."""
    dataset = config.dataset
    if dataset is not None and not (isinstance(dataset, str) and (dataset in DATASETS or dataset.endswith(".npz"))):
        raise ValueError(f"dataset must be one of {', '.join(DATASETS)} or a path ending in .npz; got {dataset!r}.")
    _choice("split", config.split, SPLITS)
    _choice("dtype", config.dtype, DTYPES)
    _choice("schedule", config.schedule, SCHEDULES)
    _choice("standardize", config.standardize, STANDARDIZE)
    if config.n_val is not None:
        _int("n_val", config.n_val, 1)
    if config.n_train is not None:
        _int("n_train", config.n_train, 1)
    widths = parse_sizes(config.sizes)
    check_init(config.init)
    check_dropout(config.dropout, len(widths) - 2)
    if config.opt_eps is not None and not (isinstance(config.opt_eps, numbers.Real) and not isinstance(
            config.opt_eps, bool) and 0 < config.opt_eps < 1):   # 0 divides 0 by 0 where v is 0
        raise ValueError(f"opt_eps (--opt-eps) must be a number in (0, 1), the epsilon in the "
                         f"denominator of adam and adagrad; got {config.opt_eps!r}. Leave it unset "
                         f"for PyTorch's default (1e-8 for adam, 1e-10 for adagrad).")
    config.make_optimizer()
    config.make_augment()
    check_nonnegative(config.lam, "lam")
    for name in ("eta_min", "eta_max", "eta"):
        _positive(name, getattr(config, name))
    if config.eta_min > config.eta_max:
        raise ValueError(f"eta_min must be <= eta_max; got eta_min={config.eta_min}, "
                         f"eta_max={config.eta_max}.")
    if config.ns is None:
        _positive("ns_epochs", config.ns_epochs, MAX_EPOCHS)
    else:
        _int("ns", config.ns, 1, MAX_STEPS // 2)
    _int("cycles", config.cycles, 1, MAX_STEPS // 2)
    if config.ns is not None and config.epochs is None:
        check_steps(2 * config.ns * config.cycles, f"2 * ns * cycles with ns={config.ns}, cycles={config.cycles}")
    if config.epochs is not None:
        _int("epochs", config.epochs, 1, MAX_EPOCHS)
        if config.schedule == "cyclic":
            raise ValueError(f"epochs sets the length of the constant and onecycle schedules; a "
                             f"cyclic run (--schedule cyclic, the default) lasts 2 * n_s * cycles "
                             f"steps: drop --epochs and set cycles and ns_epochs instead (--cycles, "
                             f"--ns-epochs), or use --schedule constant or onecycle; got "
                             f"epochs={config.epochs}.")
    if not isinstance(config.pct_start, numbers.Real) or not 0 < config.pct_start < 1:
        raise ValueError(f"pct_start must be a number in (0, 1); got {config.pct_start!r}.")
    _positive("div_factor", config.div_factor)
    _positive("final_div_factor", config.final_div_factor)
    _int("batch", config.batch, 1)
    if config.batch_norm is True and config.batch < 2:
        raise ValueError(f"batch must be >= 2 with batch norm: it normalises each unit by the mean and "
                         f"variance of its batch, which one row does not have; got batch={config.batch}. "
                         f"Use --batch 2 or more, or --no-batch-norm.")
    _int("seed", config.seed, 0, MAX_SEED)
    if config.threads is not None:
        import numba
        _int("threads", config.threads, 1, numba.config.NUMBA_NUM_THREADS)
    _int("eval_every", config.eval_every, 0)
    _int("train_eval", config.train_eval, 0)
    for name in ("data_dir", "out", "tensorboard"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, str) or not value.strip() or "\0" in value):
            raise ValueError(f"{name} must be a folder path (a non-empty string); got {value!r}. Leave "
                             f"it unset for the default.")
    for name in ("batch_norm", "download", "nesterov", "cycle_momentum", "restore_best", "eval_test"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false; got {getattr(config, name)!r}.")
    from .stopping import check_config
    check_config(config)
    for f in dataclasses.fields(config):   # unused ones too (momentum with sgd): the run's JSON files
        value = getattr(config, f.name)    # hold every field, and JSON has no NaN or Infinity
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number; got {value!r}.")
    return config


def check_data(config, n_train, n_features, n_classes):
    """The checks of `config` that need the data; return the layer widths with 'auto' resolved."""
    if config.batch > n_train:
        raise ValueError(f"batch must be <= the number of training rows ({n_train}); "
                         f"got batch={config.batch}. Use a smaller --batch or --n-val, or a larger --n-train.")
    widths = parse_sizes(config.sizes)
    for at, want, what in ((0, n_features, "input features"), (-1, n_classes, "classes")):
        if widths[at] == "auto":
            widths[at] = want
        elif widths[at] != want:
            raise ValueError(f"sizes must start with the data's {n_features} input features and end "
                             f"with its {n_classes} classes; got sizes={config.sizes!r}, whose "
                             f"{what} width is {widths[at]}. Write 'auto' there to take it from the data.")
    spe = n_train // config.batch
    if config.half_cycle(spe) < 1:
        raise ValueError(f"ns_epochs * steps per epoch must round to at least 1 step; got ns_epochs="
                         f"{config.ns_epochs} with {spe} steps per epoch.")
    if config.epochs is not None and config.schedule != "cyclic":
        check_steps(config.epochs * spe, f"epochs * steps per epoch with epochs={config.epochs}, {spe} steps "
                                         f"per epoch")
    else:
        check_steps(2 * config.half_cycle(spe) * config.cycles,
                    f"2 * n_s * cycles with n_s={config.half_cycle(spe)} steps, cycles={config.cycles}")
    check_parameters(widths)
    return widths


def parse_sizes(sizes):
    """'3072-50-50-10', 'auto-50-auto' or a list -> list of widths; 'auto' only at either end.

    Hidden and output widths are at most MAX_WIDTH, and there are at most MAX_LAYERS weight layers;
    the input width is the data's (check_data bounds the parameters it makes)."""
    if isinstance(sizes, str):
        parts = [p.strip() for p in sizes.split("-")]
    elif isinstance(sizes, (list, tuple)):
        parts = list(sizes)
    else:
        parts = None
    widths = []
    for k, p in enumerate(parts or []):
        if p == "auto" and k in (0, len(parts) - 1):
            widths.append("auto")
        elif isinstance(p, str) and p.isascii() and p.isdigit() and len(p) <= 18 and int(p) > 0:
            widths.append(int(p))
        elif isinstance(p, numbers.Integral) and not isinstance(p, bool) and p > 0:
            widths.append(int(p))
        else:
            widths = None
            break
    if not widths or len(widths) < 2:
        raise ValueError(f"sizes must be at least two positive widths joined by '-', inputs first, with "
                         f"'auto' allowed only at either end, e.g. 'auto-50-50-auto' or '3072-50-10'; "
                         f"got {sizes!r}.")
    if len(widths) - 1 > MAX_LAYERS:
        raise ValueError(f"sizes must make at most {MAX_LAYERS} layers; got {len(widths) - 1} in {sizes!r}.")
    wide = [w for w in widths[1:] if w != "auto" and w > MAX_WIDTH]
    if wide:
        raise ValueError(f"sizes must have hidden and output widths of at most {MAX_WIDTH} units; got {wide[0]} "
                         f"in {sizes!r}.")
    return widths


def _choice(name, value, choices):
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}; got {value!r}.")


def check_steps(steps, how):
    """Refuse a run longer than MAX_STEPS update steps; `how` says how its length came about."""
    if steps > MAX_STEPS:
        raise ValueError(f"a run of {how} is {steps:,} update steps, more than the {MAX_STEPS:,} fastmlp "
                         f"allows (it keeps every step's eta and loss); shorten it with --ns, --ns-epochs, "
                         f"--cycles or --epochs.")


def check_parameters(widths):
    """Refuse a network whose parameters would not fit: with gradients, Adam's two moments and a
    checkpoint copy, each parameter costs ~5 times its size."""
    count = sum((a + 2) * b for a, b in zip(widths[:-1], widths[1:]))   # weights, bias, BN's gamma
    if count > MAX_PARAMETERS:
        raise ValueError(f"sizes {'-'.join(map(str, widths))} make a network of {count:,} parameters, more than "
                         f"the {MAX_PARAMETERS:,} fastmlp allows (~{5 * 8 * MAX_PARAMETERS / 1e9:.0f} GB with "
                         f"gradients and optimiser state in float64); use narrower or fewer layers.")


def _int(name, value, lo, hi=None):
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        rule = f"an integer in [{lo}, {hi}]" if hi is not None else f"an integer >= {lo}"
        raise ValueError(f"{name} must be {rule}; got {value!r}.")


def _positive(name, value, hi=None):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not ok or not (0 < value < float("inf")) or (hi is not None and value > hi):
        rule = "a finite number > 0" if hi is None else f"a number in (0, {hi}]"
        raise ValueError(f"{name} must be {rule}; got {value!r}.")
