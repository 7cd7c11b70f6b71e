"""What `fastmlp` accepts on the command line: the argument parser of every subcommand and its flags.

It is apart from fastmlp/cli.py, which runs the commands, because the two are read for different
questions ("which flags does `fastmlp search` take, and what do they default to?" versus "what does
`fastmlp search` do with them?"), and together they made one file too long to read whole.
`fastmlp train` has one flag per TrainConfig field, built from the dataclass (so help and defaults
come from one place); `search` and `report` likewise take one flag per field of their plan dataclass.
"""
import argparse
import dataclasses

from . import __version__, show
from .config import TrainConfig
from .studies import gradtable


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_config_flags(parser, skip=()):
    """One flag per TrainConfig field but those in `skip`; unset flags stay out of the namespace
    (SUPPRESS) so that they do not override a --config file."""
    for f in dataclasses.fields(TrainConfig):
        if f.name in skip:
            continue
        meta = dict(f.metadata)
        help_text = meta.pop("help") + ("" if f.default is None else f" (default: {f.default})")
        flag = "--" + f.name.replace("_", "-")
        if isinstance(f.default, bool):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text,
                                default=argparse.SUPPRESS)
        else:
            parser.add_argument(flag, help=help_text, default=argparse.SUPPRESS, **meta)


def build_parser():
    """The `fastmlp` parser: a subparser per command; fastmlp.cli.COMMANDS runs each."""
    parser = _Parser(prog="fastmlp", description="Train and use k-layer MLP classifiers on the CPU.")
    parser.add_argument("--version", action="version", version=f"fastmlp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("train", help="train a network; writes model.npz, metrics, history, plots",
                            description="Train a network. Defaults are the DD2424 assignment 3 study.")
    p.add_argument("--config", metavar="FILE.toml", help="read settings from a TOML file of "
                   "TrainConfig fields; flags given here override it")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run in --out")
    p.add_argument("--repeats", type=int, default=1, metavar="N",
                   help="train N times, seeds --seed, --seed + 1, ..., each into OUT/seed-<s>/, and write "
                        "OUT/summary.md and summary.json (mean ± std of each accuracy); rerun with the same "
                        "--out to continue (default: 1, one run in OUT)")
    _add_config_flags(p)

    p = commands.add_parser("evaluate", help="loss, cost and accuracy of a model on a dataset")
    p.add_argument("model", metavar="MODEL", help="a model.npz written by `fastmlp train`")
    _add_data_flags(p, "default: the model's own")
    p.add_argument("--out", metavar="DIR", help="also write DIR/per_class.md and .csv (accuracy of each "
                   "class), confusion.csv and confusion.png, and misclassified.png (the most confident "
                   "mistakes), on the test rows")

    p = commands.add_parser("predict", help="predicted labels for the rows of a .npy file",
                            description="Predict labels for the rows of FILE.npy. By default the rows are "
                                        "raw, in the units of the training files (pixels 0..255), and are "
                                        "standardised with the mean and std stored in the model.")
    p.add_argument("model", metavar="MODEL", help="a model.npz written by `fastmlp train`")
    p.add_argument("file", metavar="FILE.npy", help="rows (N, D), one row (D,), or images (N, C, H, W)")
    p.add_argument("--standardized", action="store_true",
                   help="the rows are already standardised: use them as they are")
    p.add_argument("--out", metavar="PATH", help="write the labels to PATH (.npy: int64 array; "
                   "else text, one per line) instead of printing them")

    p = commands.add_parser("export", help="write a model as an ONNX graph (for onnxruntime etc.)",
                            description="Write MODEL as an ONNX graph (float32, opset 13) that takes what "
                                        "`fastmlp predict` takes, raw rows (N, D) in the units of the "
                                        "training files, and outputs `probabilities` (N, C) and `label` "
                                        "(N,). The standardisation with the model's mean and std is in the "
                                        "graph; batch norm is folded into the Linear layers. Needs pip "
                                        "install \"fastmlp[onnx]\".")
    p.add_argument("model", metavar="MODEL", help="a model.npz written by `fastmlp train`")
    p.add_argument("onnx", metavar="OUT.onnx", help="the ONNX file to write")
    p.add_argument("--standardized", action="store_true",
                   help="the graph takes standardised rows: leave the standardisation out")

    p = commands.add_parser("download", help="download a dataset into the data folder")
    p.add_argument("name", choices=("cifar10", "fashion-mnist"))
    p.add_argument("--data-dir", metavar="DIR", help="where to put it (default: $FASTMLP_DATA or "
                   "~/.cache/fastmlp)")
    p.add_argument("--url", help="a mirror to download from instead of the official address")

    p = commands.add_parser("gradcheck", help="analytic vs finite-difference gradients, per parameter",
                            description="Check the analytic gradients of a network against centred "
                                        "differences in float64 on the first N standardised images "
                                        "(first DIMS features); prints the table and PASS or FAIL "
                                        "(exit status 1) against --tol.")
    gradtable.add_flags(p)

    p = commands.add_parser("show", help="a grid of images with class names (and a model's predictions)",
                            description="Draw a grid of a dataset's images, each captioned with its class "
                                        "or, given --model, with the model's prediction; wrong "
                                        "predictions are framed and captioned in red.")
    show.add_flags(p)

    p = commands.add_parser("study", help="run one of the report's studies (init, depth, eta)",
                            description="Train a grid of networks through `fastmlp train`'s trainer and "
                                        "tabulate test accuracy (mean ± std over seeds).")
    studies = p.add_subparsers(dest="study", required=True, metavar="STUDY")
    from .studies.designs import STUDIES
    for design in STUDIES.values():
        q = studies.add_parser(design.name, help=design.title, description=design.title + ". Other "
                               "flags are TrainConfig fields, passed to every run as in `fastmlp train`.")
        q.add_argument(design.option, nargs="+", default=design.default, metavar="VALUE",
                       type=str if design.name == "depth" else float,
                       help=f"{design.help} (default: {' '.join(map(str, design.default))})")
        q.add_argument("--seeds", type=int, default=1, help="runs per trial, seeds --seed, --seed + 1, "
                       "...; the table shows mean ± std (default: 1)")
        q.add_argument("--out", metavar="DIR", help="study folder (default: runs/study-<name>-<time>); "
                       "rerun with the same DIR to reuse the runs that finished")
        _add_config_flags(q, skip=(*design.varies, "out"))

    p = commands.add_parser("search", help="search lam (eta, architecture, dropout): random, grid or TPE",
                            description="Search the L2 penalty lam: COARSE values log-uniform in "
                                        "[10^L_MIN, 10^L_MAX] (or --lams), then FINE values within +-WIDTH "
                                        "decades of the best, for STAGES - 1 narrowing stages; or every "
                                        "combination of listed values (--sampler grid); or Optuna's TPE "
                                        "(--sampler tpe). Optionally also eta_max (or eta with --schedule "
                                        "constant), the architecture and the dropout rate, repeated seeds, "
                                        "and a final longer run of the winner. Trials run in local "
                                        "processes of one thread each, or on a Dask cluster. Rerun with the "
                                        "same --out to continue: finished trials are kept. Other flags are "
                                        "TrainConfig fields, the base of every trial.")
    _add_plan_flags(p)
    p.add_argument("--out", metavar="DIR", help="search folder (default: runs/search-<time>)")
    _add_config_flags(p, skip=("lam", "out", "threads"))

    p = commands.add_parser("report", help="the whole A3 study on a data set, as one HTML page",
                            description="Run the whole DD2424 Assignment 3 study on a data set: gradient "
                                        "table; 2-, 3- and 9-layer networks with and without batch norm; "
                                        "coarse -> fine lam search and the winner retrained; the init and "
                                        "eta studies. Writes OUT/report.html (self-contained) and "
                                        "OUT/report.md with every table and figure and the command and "
                                        "config of each result. Rerun with the same --out to reuse the "
                                        "steps that finished; a step whose settings changed runs again. "
                                        "Other flags are TrainConfig fields, the base of every run.")
    from .studies.fullreport import ReportPlan
    _add_plan_flags(p, ReportPlan)
    p.add_argument("--out", metavar="DIR", help="report folder (default: runs/report-<time>)")
    _add_config_flags(p, skip=("out", "threads"))

    p = commands.add_parser("show-augment", help="a picture of augmented training images",
                            description="Draw a grid of training images, one per row: the original, then "
                                        "VARIANTS augmented copies, so you can see what the network sees.")
    p.add_argument("--dataset", default="sample", metavar="{cifar10,fashion-mnist,sample,PATH.npz}",
                   help="default: %(default)s")
    p.add_argument("--data-dir", metavar="DIR", help="folder searched first for the dataset")
    p.add_argument("--augment", default="flip,translate=2,blur,jitter", metavar="SPEC",
                   help="e.g. flip=0.3,translate=4:edge,blur=0.5:0.3-1.0,brightness=0.1,contrast=0.2 "
                        "(default: %(default)s)")
    p.add_argument("--n", type=int, default=8, help="images, one per row (default: %(default)s)")
    p.add_argument("--variants", type=int, default=6, help="augmented copies of each (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="picks the images and the draws (default: %(default)s)")
    p.add_argument("--out", default="augment.png", metavar="FILE.png", help="default: %(default)s")
    return parser


def _add_plan_flags(parser, plan=None):
    """One flag per field of `plan` (a dataclass; unset: SearchPlan), help and default from it."""
    from .studies.search import SearchPlan
    for f in dataclasses.fields(plan or SearchPlan):
        meta = dict(f.metadata)
        shown = f.default if not isinstance(f.default, bool) and f.default is not None else None
        help_text = meta.pop("help") + ("" if shown is None else f" (default: {shown})")
        parser.add_argument("--" + f.name.replace("_", "-"), help=help_text, default=f.default, **meta)


def _add_data_flags(parser, default):
    parser.add_argument("--dataset", metavar="{cifar10,fashion-mnist,sample,PATH.npz}",
                        help=f"the data to evaluate on ({default})")
    parser.add_argument("--data-dir", metavar="DIR", help="folder searched first for the dataset")
    parser.add_argument("--split", choices=("a2", "a3"), help=f"({default})")
    parser.add_argument("--n-val", type=int, help=f"validation rows ({default})")
    parser.add_argument("--download", action="store_true", help="download the dataset if missing")
