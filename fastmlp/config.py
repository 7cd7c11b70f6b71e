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
from dataclasses import dataclass, field

try:
    import tomllib
except ModuleNotFoundError:     # Python 3.10: the same parser as the `tomli` package, if installed
    try:
        import tomli as tomllib
    except ModuleNotFoundError:
        tomllib = None

from . import config_rules as rules
from . import optim
# The choices of the fields below; the other names are imported from fastmlp.config by other modules.
from .config_rules import (DATASETS, DTYPES, MAX_EPOCHS, MAX_LAYERS, MAX_PARAMETERS,  # noqa: F401
                           MAX_SEED, MAX_STEPS, SCHEDULES, SPLITS, STANDARDIZE, _int, parse_sizes)
from .schedules import Constant, Cyclic, OneCycle

# Fields that may change between an interrupted run and its resumption: they do not touch the result.
RESUME_FREE = ("threads", "out", "data_dir", "download", "tensorboard")


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

    # ---- validation (the rules are in config_rules.py) ---------------------------------------------
    def validate(self):
        """Check every field that can be checked without the data; return self."""
        return rules.validate(self)

    def check_data(self, n_train, n_features, n_classes):
        """The checks that need the data; return the layer widths with 'auto' resolved."""
        return rules.check_data(self, n_train, n_features, n_classes)

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
