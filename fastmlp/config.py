"""TrainConfig: every knob of one training run, for the library and the CLI alike.

The CLI builds `fastmlp train`'s flags from these fields (name `eta_min` -> flag `--eta-min`, help and
default from here), so the two never disagree.  A TOML file (`--config run.toml`) uses the field names
as keys; flags given on the command line override the file.

The half-cycle n_s is given in epochs (`ns_epochs`, the default) or in update steps (`ns`, which wins
when set).  An epoch is `n_train // batch` steps: the last partial batch is dropped (see train.py).
The run lasts 2 * n_s * cycles update steps, or `epochs` epochs with the constant and one-cycle
schedules when it is set (the cyclic schedule's length is its cycles: `epochs` is refused there).
"""
import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass, field

try:
    import tomllib
except ModuleNotFoundError:     # Python 3.10: the same parser as the `tomli` package, if installed
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

from ._checks import MAX_WIDTH, check_nonnegative
from . import optim
from .network import check_dropout, check_init
from .schedules import Constant, Cyclic, OneCycle

DATASETS = ("cifar10", "fashion-mnist", "sample")
SPLITS = ("a2", "a3")
DTYPES = ("float32", "float64")
SCHEDULES = ("cyclic", "constant", "onecycle")
STANDARDIZE = ("auto", "pixel", "channel")
# Fields that may change between an interrupted run and its resumption: they do not touch the result.
RESUME_FREE = ("threads", "out", "data_dir", "download", "tensorboard")
# Bounds on the flags that size what a run allocates, so that a typo is refused in one line instead
# of exhausting memory.  A run keeps eta and the batch loss of every step (History, steps.csv: ~50
# bytes a step in memory and on disk, rewritten at every checkpoint): 10 million steps is ~0.5 GB, and
# 22,000 epochs of the CIFAR-10 study.
MAX_STEPS = 10_000_000
MAX_EPOCHS = 1_000_000          # ns_epochs and epochs; the step bound above usually bites first
MAX_SEED = 2**63 - 1            # seeds reach Numba kernels, which type a Python int as int64
MAX_LAYERS = 64                 # weight layers; far deeper than a plain MLP trains
MAX_PARAMETERS = 100_000_000    # see check_parameters


def _parse_init(text):
    """--init he | xavier | lecun | SIGMA: a number becomes a float; anything else is left for validate()
    to refuse with the full rule."""
    try:
        return float(text)
    except ValueError:
        return text


def _parse_dropout(text):
    """--dropout 0.1 | 0.1,0.2: one rate, or one per hidden layer; a non-number is left for
    validate() to refuse with the full rule."""
    try:
        rates = [float(r) for r in text.split(",")]
    except ValueError:
        return text
    return rates[0] if len(rates) == 1 else rates


def _opt(default, help, **cli):
    """A field whose `help` is both its comment and its CLI help; `cli` holds argparse extras."""
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class TrainConfig:
    # -- data
    dataset: str | None = _opt(None, "cifar10, fashion-mnist, sample or a PATH.npz; unset: CIFAR-10 if it is "
                              "found locally, else the embedded sample",
                        metavar="{cifar10,fashion-mnist,sample,PATH.npz}")
    data_dir: str | None = _opt(None, "folder searched first for the dataset (then $FASTMLP_DATA, "
                               "~/.cache/fastmlp)", metavar="DIR")
    split: str = _opt("a3", "a3: train on all training rows but the last n_val; a2: train on "
                            "data_batch_1, validate on data_batch_2", choices=SPLITS)
    n_val: int | None = _opt(None, "validation rows held out of the training set (split a3); unset: "
                                   "5000 on CIFAR-10 as in the study, a tenth of the rows otherwise",
                             type=int)
    n_train: int | None = _opt(None, "train on only the first N rows of the training part (validation "
                                     "and test rows unchanged), e.g. 100 to check that the net can "
                                     "overfit them; unset: all of them", type=int, metavar="N")
    download: bool = _opt(False, "download the dataset if it is not found locally")
    augment: str = _opt("none", "augment each training batch on the fly, on the raw images: a comma "
                                "list of flip[=P], translate[=K[:edge]], blur[=P], brightness=B, "
                                "contrast=C, jitter (see fastmlp show-augment); none: off",
                        metavar="SPEC")
    standardize: str = _opt("auto", "standardise with each pixel's training mean and std (pixel, the "
                                    "study's), or each channel's (channel); auto: channel when "
                                    "augmenting, since a pixel moved onto a low-variance spot (an "
                                    "image's border) would be blown up, else pixel",
                            choices=STANDARDIZE)
    # -- network
    sizes: str | list = _opt("auto-50-50-auto", "layer widths, inputs first; 'auto' at either end takes the "
                                         "width from the data", metavar="3072-50-50-10")
    batch_norm: bool = _opt(True, "Linear -> BatchNorm -> ReLU in the hidden layers")
    init: str | float = _opt("he", "weight init, fan_in/fan_out a layer's inputs/outputs: he N(0, "
                                   "2/fan_in), he_uniform U(+-sqrt(6/fan_in)), xavier (= xavier_normal) "
                                   "N(0, 2/(fan_in+fan_out)), xavier_uniform U(+-sqrt(6/(fan_in+fan_out))), "
                                   "lecun N(0, 1/fan_in) (the DD2424 bonus report's \"Xavier\"), or a "
                                   "float SIGMA for N(0, SIGMA^2)", type=_parse_init,
                             metavar="{he,he_uniform,xavier,xavier_normal,xavier_uniform,lecun,SIGMA}")
    dtype: str = _opt("float32", "float type of data and parameters", choices=DTYPES)
    dropout: float | list = _opt(0.0, "inverted dropout after each hidden layer: the probability of "
                                      "dropping a unit, or one rate per hidden layer (0.1,0.2)",
                                 type=_parse_dropout, metavar="RATE[,RATE...]")
    # -- optimiser
    optimizer: str = _opt("sgd", "update rule, driven by the learning-rate schedule",
                          choices=optim.NAMES)
    momentum: float = _opt(0.9, "momentum of the momentum optimizer", type=float)
    nesterov: bool = _opt(False, "Nesterov momentum (with --optimizer momentum)")
    beta1: float = _opt(0.9, "Adam's first-moment decay", type=float)
    beta2: float = _opt(0.999, "Adam's second-moment decay", type=float)
    opt_eps: float | None = _opt(None, "epsilon of adam/adagrad; unset: PyTorch's default (1e-8 for "
                                       "adam, 1e-10 for adagrad)", type=float)
    # -- objective and schedule
    lam: float = _opt(0.005, "L2 penalty: cost = mean loss + lam * sum of squared weights", type=float)
    schedule: str = _opt("cyclic", "learning rate: cyclic (triangular, eta_min..eta_max), constant "
                                   "(eta) or onecycle (PyTorch's OneCycleLR up to eta_max)",
                         choices=SCHEDULES)
    eta_min: float = _opt(1e-5, "lowest learning rate of the cyclic schedule", type=float)
    eta_max: float = _opt(1e-1, "highest learning rate of the cyclic and onecycle schedules",
                          type=float)
    eta: float = _opt(0.01, "learning rate of the constant schedule", type=float)
    ns_epochs: float = _opt(5.0, "half-cycle n_s in epochs (ignored when ns is set)", type=float)
    ns: int | None = _opt(None, "half-cycle n_s in update steps; overrides ns_epochs", type=int)
    cycles: int = _opt(2, "number of cycles; the run is 2 * n_s * cycles update steps", type=int)
    epochs: int | None = _opt(None, "run length in epochs with the constant and onecycle schedules; "
                                    "unset: 2 * n_s * cycles steps", type=int)
    pct_start: float = _opt(0.3, "onecycle: the fraction of the run in which eta rises", type=float)
    div_factor: float = _opt(25.0, "onecycle: eta starts at eta_max / div_factor", type=float)
    final_div_factor: float = _opt(1e4, "onecycle: eta ends at eta_max / div_factor / "
                                        "final_div_factor", type=float)
    cycle_momentum: bool = _opt(True, "onecycle: cycle the momentum optimizer's momentum (adam's "
                                      "beta1) from 0.95 down to 0.85 and back, against eta, as "
                                      "OneCycleLR does; off: keep --momentum")
    batch: int = _opt(100, "rows per update step", type=int)
    seed: int = _opt(0, "seeds the weights, every epoch's shuffle, the dropout masks and the "
                        "augmentation draws", type=int)
    # -- early stopping (fastmlp.stopping)
    early_stopping: int | None = _opt(None, "stop when the validation score --monitor has not improved for PATIENCE "
                                            "evaluations in a row (each epoch's end, and every --eval-every steps) "
                                            "and keep the best evaluation's weights; unset: train the whole "
                                            "schedule", type=int, metavar="PATIENCE")
    monitor: str = _opt("val_loss", "the score --early-stopping watches: val_loss (lower is better) or "
                                    "val_accuracy (higher is better)", choices=("val_loss", "val_accuracy"))
    min_delta: float = _opt(0.0, "--early-stopping counts an evaluation as an improvement only if it beats "
                                 "the best by more than this (val_accuracy: a fraction, 0.001 = 0.1 points)",
                            type=float)
    restore_best: bool = _opt(True, "--early-stopping ends with the weights of the best evaluation in "
                                    "model.npz; --no-restore-best keeps the last ones")
    # -- running
    threads: int | None = _opt(None, "Numba threads (1..NUMBA_NUM_THREADS); unset: all", type=int)
    eval_every: int = _opt(0, "also evaluate every this many steps; 0: only at the end of each epoch",
                           type=int)
    train_eval: int = _opt(5000, "training rows the train curves are evaluated on (a fixed seeded "
                                 "subset); 0: all of them. Final accuracies always use all",
                           type=int)
    eval_test: bool = _opt(False, "also measure the test loss, cost and accuracy at each evaluation "
                                  "(history.csv's test_* columns, the curves labelled test); for "
                                  "looking only: choose settings by the validation curves")
    out: str | None = _opt(None, "output folder; unset: runs/<YYYYmmdd-HHMMSS>", metavar="DIR")
    tensorboard: str | None = _opt(None, "also write TensorBoard event files into DIR/<name of the output "
                                         "folder>/: loss, cost and accuracy in percent at each evaluation, learning "
                                         "rate and batch loss per step; view with tensorboard --logdir DIR "
                                         "(needs pip install \"fastmlp[tensorboard]\")", metavar="DIR")

    # ---- validation -------------------------------------------------------------------------------
    def validate(self):
        """Check every field that can be checked without the data; return self."""
        if self.dataset is not None and not (
                isinstance(self.dataset, str) and (self.dataset in DATASETS or self.dataset.endswith(".npz"))):
            raise ValueError(f"dataset must be one of {', '.join(DATASETS)} or a path ending in .npz; "
                             f"got {self.dataset!r}.")
        _choice("split", self.split, SPLITS)
        _choice("dtype", self.dtype, DTYPES)
        _choice("schedule", self.schedule, SCHEDULES)
        _choice("standardize", self.standardize, STANDARDIZE)
        if self.n_val is not None:
            _int("n_val", self.n_val, 1)
        if self.n_train is not None:
            _int("n_train", self.n_train, 1)
        widths = parse_sizes(self.sizes)
        check_init(self.init)
        check_dropout(self.dropout, len(widths) - 2)
        if self.opt_eps is not None and not (isinstance(self.opt_eps, numbers.Real) and not isinstance(
                self.opt_eps, bool) and 0 < self.opt_eps < 1):   # 0 divides 0 by 0 where v is 0
            raise ValueError(f"opt_eps (--opt-eps) must be a number in (0, 1), the epsilon in the "
                             f"denominator of adam and adagrad; got {self.opt_eps!r}. Leave it unset "
                             f"for PyTorch's default (1e-8 for adam, 1e-10 for adagrad).")
        self.make_optimizer()
        self.make_augment()
        check_nonnegative(self.lam, "lam")
        for name in ("eta_min", "eta_max", "eta"):
            _positive(name, getattr(self, name))
        if self.eta_min > self.eta_max:
            raise ValueError(f"eta_min must be <= eta_max; got eta_min={self.eta_min}, "
                             f"eta_max={self.eta_max}.")
        if self.ns is None:
            _positive("ns_epochs", self.ns_epochs, MAX_EPOCHS)
        else:
            _int("ns", self.ns, 1, MAX_STEPS // 2)
        _int("cycles", self.cycles, 1, MAX_STEPS // 2)
        if self.ns is not None and self.epochs is None:
            check_steps(2 * self.ns * self.cycles, f"2 * ns * cycles with ns={self.ns}, cycles={self.cycles}")
        if self.epochs is not None:
            _int("epochs", self.epochs, 1, MAX_EPOCHS)
            if self.schedule == "cyclic":
                raise ValueError(f"epochs sets the length of the constant and onecycle schedules; a "
                                 f"cyclic run (--schedule cyclic, the default) lasts 2 * n_s * cycles "
                                 f"steps: drop --epochs and set cycles and ns_epochs instead (--cycles, "
                                 f"--ns-epochs), or use --schedule constant or onecycle; got "
                                 f"epochs={self.epochs}.")
        if not isinstance(self.pct_start, numbers.Real) or not 0 < self.pct_start < 1:
            raise ValueError(f"pct_start must be a number in (0, 1); got {self.pct_start!r}.")
        _positive("div_factor", self.div_factor)
        _positive("final_div_factor", self.final_div_factor)
        _int("batch", self.batch, 1)
        if self.batch_norm is True and self.batch < 2:
            raise ValueError(f"batch must be >= 2 with batch norm: it normalises each unit by the mean and "
                             f"variance of its batch, which one row does not have; got batch={self.batch}. "
                             f"Use --batch 2 or more, or --no-batch-norm.")
        _int("seed", self.seed, 0, MAX_SEED)
        if self.threads is not None:
            import numba
            _int("threads", self.threads, 1, numba.config.NUMBA_NUM_THREADS)
        _int("eval_every", self.eval_every, 0)
        _int("train_eval", self.train_eval, 0)
        for name in ("data_dir", "out", "tensorboard"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value.strip() or "\0" in value):
                raise ValueError(f"{name} must be a folder path (a non-empty string); got {value!r}. Leave "
                                 f"it unset for the default.")
        for name in ("batch_norm", "download", "nesterov", "cycle_momentum", "restore_best", "eval_test"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false; got {getattr(self, name)!r}.")
        from .stopping import check_config
        check_config(self)
        for f in dataclasses.fields(self):   # unused ones too (momentum with sgd): the run's JSON files
            value = getattr(self, f.name)    # hold every field, and JSON has no NaN or Infinity
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{f.name} must be a finite number; got {value!r}.")
        return self

    def check_data(self, n_train, n_features, n_classes):
        """The checks that need the data; return the layer widths with 'auto' resolved."""
        if self.batch > n_train:
            raise ValueError(f"batch must be <= the number of training rows ({n_train}); "
                             f"got batch={self.batch}. Use a smaller --batch or --n-val, or a larger --n-train.")
        widths = parse_sizes(self.sizes)
        for at, want, what in ((0, n_features, "input features"), (-1, n_classes, "classes")):
            if widths[at] == "auto":
                widths[at] = want
            elif widths[at] != want:
                raise ValueError(f"sizes must start with the data's {n_features} input features and end "
                                 f"with its {n_classes} classes; got sizes={self.sizes!r}, whose "
                                 f"{what} width is {widths[at]}. Write 'auto' there to take it from the data.")
        spe = n_train // self.batch
        if self.half_cycle(spe) < 1:
            raise ValueError(f"ns_epochs * steps per epoch must round to at least 1 step; got ns_epochs="
                             f"{self.ns_epochs} with {spe} steps per epoch.")
        if self.epochs is not None and self.schedule != "cyclic":
            check_steps(self.epochs * spe, f"epochs * steps per epoch with epochs={self.epochs}, {spe} steps "
                                           f"per epoch")
        else:
            check_steps(2 * self.half_cycle(spe) * self.cycles,
                        f"2 * n_s * cycles with n_s={self.half_cycle(spe)} steps, cycles={self.cycles}")
        check_parameters(widths)
        return widths

    # ---- derived --------------------------------------------------------------------------------
    def half_cycle(self, steps_per_epoch):
        """n_s in update steps: `ns` if set, else ns_epochs epochs rounded to whole steps."""
        return self.ns if self.ns is not None else int(round(self.ns_epochs * steps_per_epoch))

    def make_schedule(self, steps_per_epoch):
        ns = self.half_cycle(steps_per_epoch)
        total = 2 * ns * self.cycles if self.epochs is None else self.epochs * steps_per_epoch
        if self.schedule == "constant":
            return Constant(self.eta, total_steps=total)
        if self.schedule == "onecycle":
            return OneCycle(self.eta_max, total, self.pct_start, self.div_factor,
                            self.final_div_factor)
        return Cyclic(self.eta_min, self.eta_max, ns, self.cycles)

    def make_optimizer(self):
        """A fresh fastmlp.optim.Optimizer for this run."""
        return optim.make(self.optimizer, self.momentum, self.nesterov, self.beta1, self.beta2,
                          self.opt_eps)

    def standardization(self):
        """'pixel' or 'channel': the standardisation this run uses (auto resolved)."""
        if self.standardize != "auto":
            return self.standardize
        return "channel" if self.make_augment().enabled else "pixel"

    def make_augment(self):
        """The parsed --augment spec (a fastmlp.augment.Augment; .enabled is False for none)."""
        from .augment import parse_augment
        if not isinstance(self.augment, str):
            raise ValueError(f"augment must be a spec string such as 'flip,translate=2' or 'none'; "
                             f"got {self.augment!r}.")
        return parse_augment(self.augment)

    def to_dict(self):
        return dataclasses.asdict(self)

    # ---- sources -----------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, values, where="config"):
        """A config from a mapping of field names, refusing unknown keys (`where` names the source)."""
        check_keys(values, where)
        return cls(**values)

    @classmethod
    def from_toml(cls, path):
        return cls.from_dict(read_toml(path), where=str(path))

    @classmethod
    def from_sources(cls, *sources, base=None):
        """Merge (name, mapping) sources of field values over `base` (a TrainConfig or None), later
        ones winning: a file, then command-line flags.

        ns and ns_epochs both set the half-cycle: a source that gives one clears the other from the
        sources before it, and one source giving both is an error.
        """
        values = base.to_dict() if base is not None else {}
        for where, source in sources:
            check_keys(source, where)
            if source.get("ns") is not None and source.get("ns_epochs") is not None:
                raise ValueError(f"{where}: give the half-cycle as ns (steps) or as ns_epochs, not both; "
                                 f"got ns={source['ns']}, ns_epochs={source['ns_epochs']}.")
            if "ns_epochs" in source:
                values["ns"] = None
            values.update(source)
        return cls(**values)


FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def check_keys(values, where):
    if not isinstance(values, dict):
        raise ValueError(f"{where}: a config must be a table of field = value; got {type(values).__name__}.")
    for key in values:
        if key not in FIELDS:
            close = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else f" Known keys: {', '.join(FIELDS)}."
            raise ValueError(f"{where}: unknown config key {key!r}.{hint}")


def read_toml(path):
    """The top-level table of a TOML file, keys checked against the fields."""
    if tomllib is None:
        raise ValueError(f"reading config file {path} needs Python 3.11+ or the tomli package "
                         f"(pip install tomli); or pass the settings as flags.")
    try:
        with open(path, "rb") as f:
            values = tomllib.load(f)
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist; give the path of a .toml file.") from None
    except OSError as e:
        raise ValueError(f"config file {path} cannot be read ({e.strerror}).") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as e:
        reason = f"{type(e).__name__}: {e}" if isinstance(e, RecursionError) else str(e)
        raise ValueError(f"config file {path} is not valid TOML (UTF-8 text of field = value lines): "
                         f"{reason}.") from None
    check_keys(values, str(path))
    return values


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
