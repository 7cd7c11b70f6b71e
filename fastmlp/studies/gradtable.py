"""`fastmlp gradcheck`: the per-parameter gradient table of any architecture on real images.

The data is the first `n` training rows and first `dims` features of a dataset, standardised
with its training statistics, in float64; the network is built with `sizes` ('auto' at either
end takes `dims` and the number of classes) and checked with fastmlp.gradcheck.  Given several
batch sizes (`--batch-sizes 10,20,30`), the same network is checked on the first n rows for each
n, and the table has one row per parameter and one column per batch size.  A check passes when
every parameter's error is at most `tol` (see gradcheck.failures); the CLI then exits 0, else 1.
"""
import argparse
import os
from pathlib import Path

from ..gradcheck import failures, format_table, gradcheck
from .._checks import check_nonnegative
from ..checkpoint import atomic_write_text
from ..config import MAX_SEED, TrainConfig, _int, _parse_dropout, parse_sizes
from ..network import Network
from ..run import load_data
from ..table import format_table as table
from .report import write_json

ENV_SHARED = "FASTMLP_SHARED_DATA"
DEFAULT_TOL = 1e-6      # float64 differences at h = 1e-5 give ~1e-10 (docs/study.md): 1e-6 is a bug
MAX_BATCH_SIZES = 20


def default_dataset():
    """The real CIFAR-10 subset if it is there ($FASTMLP_SHARED_DATA, else ../shared/data beside the
    repository), else the embedded sample."""
    here = Path(os.environ.get(ENV_SHARED, Path(__file__).resolve().parents[3] / "shared" / "data"))
    subset = here / "cifar10-subset.npz"
    return str(subset) if subset.is_file() else "sample"


def check_gradients(dataset=None, sizes="auto-50-50-auto", batch_norm=True, lam=0.005, n=20, dims=50,
                    seed=0, data_dir=None, dropout=0.0, h=1e-5, max_entries=None):
    """(rows, settings): fastmlp.gradcheck's rows and what was checked, for the report."""
    by_n, settings = check_batch_sizes([n], dataset, sizes, batch_norm, lam, dims, seed, data_dir, dropout,
                                       h, max_entries)
    return by_n[n], settings


def check_batch_sizes(ns, dataset=None, sizes="auto-50-50-auto", batch_norm=True, lam=0.005, dims=50,
                      seed=0, data_dir=None, dropout=0.0, h=1e-5, max_entries=None):
    """({n: rows}, settings): one network checked on the first n rows for each n in `ns`."""
    for n in ns:
        _int("n", n, 1)
        if batch_norm and n < 2:     # one row normalises to zero: every gradient is 0 and "passes"
            raise ValueError(f"n (--n, --batch-sizes) must be >= 2 with batch norm, whose batch statistics "
                             f"need two rows; got {n}. Use 2 or more, or --no-batch-norm.")
    _int("dims", dims, 1)
    check_nonnegative(lam, "lam")       # cheap checks before the data loads
    if check_nonnegative(h, "h") == 0:
        raise ValueError("h must be > 0 (the finite-difference step); got 0.")
    if max_entries is not None:
        _int("max_entries", max_entries, 1)
    parse_sizes(sizes)
    config = TrainConfig(dataset=dataset or default_dataset(), data_dir=data_dir, dtype="float64",
                         seed=seed).validate()
    splits = load_data(config)
    n_train, n_features = splits.X_train.shape
    if max(ns) > n_train or dims > n_features:
        raise ValueError(f"n must be <= the {n_train} training rows and dims <= the {n_features} features "
                         f"of {config.dataset}; got n={max(ns)}, dims={dims}.")
    widths = parse_sizes(sizes)
    if widths[0] not in ("auto", dims) or widths[-1] not in ("auto", splits.n_classes):
        raise ValueError(f"sizes must start with dims={dims} inputs and end with the "
                         f"{splits.n_classes} classes (or 'auto' there); got sizes={sizes!r}.")
    widths[0], widths[-1] = dims, splits.n_classes
    # with dropout, every forward of the check uses the masks of the network's drop_key: fixed
    net = Network(widths, batch_norm, "he", "float64", seed, dropout=dropout)
    by_n = {n: gradcheck(net, splits.X_train[:n, :dims].copy(), splits.y_train[:n], lam=lam, h=h,
                         max_entries=max_entries, seed=seed) for n in ns}
    settings = {"dataset": config.dataset, "source": splits.source, "sizes": widths,
                "batch_norm": batch_norm, "lam": lam, "n": ns[0] if len(ns) == 1 else list(ns), "dims": dims,
                "seed": seed, "h": h, "max_entries": max_entries, "dropout": list(net.dropout)}
    return by_n, settings


def describe(settings):
    s = settings
    n = s["n"]
    images = f"{n} images" if not isinstance(n, list) else f"the first {','.join(map(str, n))} images"
    sampled = "" if s.get("max_entries") is None else f", at most {s['max_entries']} entries a parameter"
    return (f"{'-'.join(map(str, s['sizes']))} {'with' if s['batch_norm'] else 'without'} batch norm, "
            f"{_dropout_text(s)}lam={s['lam']:g}, {images} x first {s['dims']} features of {s['dataset']}, "
            f"seed {s['seed']}, h={s.get('h', 1e-5):g}{sampled}")


def _dropout_text(s):
    rates = s.get("dropout") or []
    if not any(rates):
        return ""
    shown = f"{rates[0]:g}" if len(set(rates)) == 1 else ",".join(f"{r:g}" for r in rates)
    return f"dropout {shown} (one fixed mask), "


def batch_table(by_n, style="markdown"):
    """One row per parameter, one column per batch size: its rel error (the max abs error, marked
    'abs', where the true gradient is identically zero)."""
    ns = list(by_n)
    cells = []
    for k, first in enumerate(by_n[ns[0]]):
        row = [first["layer"], first["param"]]
        for n in ns:
            r = by_n[n][k]
            row.append(f"{r['max_abs_error']:.2e} abs" if r.get("zero_gradient") else f"{r['rel_error']:.2e}")
        cells.append(row)
    return table(["layer", "param", *(f"n={n}" for n in ns)], cells, style)


def verdict(by_n, tol):
    """(passed, line): PASS or FAIL and why, over every batch size."""
    bad = [(n, param, value) for n, rows in by_n.items() for param, value in failures(rows, tol)]
    checked = sum(len(rows) for rows in by_n.values())
    if not bad:
        return True, f"PASS: all {checked} parameter checks within --tol {tol:g}."
    where = (lambda n: f" (n={n})") if len(by_n) > 1 else (lambda n: "")
    shown = ", ".join(f"{param}{where(n)} {value:.2e}" for n, param, value in bad[:5])
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    return False, f"FAIL: {len(bad)} of {checked} parameter checks exceed --tol {tol:g}: {shown}{more}."


def write_report(out, rows, settings, by_n=None, line=None):
    """gradcheck.md (a line of settings, the table, the verdict) and gradcheck.json; returns the paths.
    by_n: {n: rows} of a batch-size sweep, written instead of `rows`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "gradcheck.md"
    shown = format_table(rows) if by_n is None else batch_table(by_n)
    atomic_write_text(md, f"Gradient check: {describe(settings)}.\n\n{shown}\n" + (f"\n{line}\n" if line else ""))
    record = {"settings": settings, "rows": rows} if by_n is None else \
        {"settings": settings, "rows_by_batch_size": {str(n): r for n, r in by_n.items()}}
    write_json(out / "gradcheck.json", record if line is None else {**record, "verdict": line})
    return md, out / "gradcheck.json"


# ---- the command ------------------------------------------------------------------------------------
def add_flags(p):
    """`fastmlp gradcheck`'s flags."""
    p.add_argument("--dataset", metavar="{cifar10,fashion-mnist,sample,PATH.npz}",
                   help="default: the CIFAR-10 subset in ../shared/data if present, else sample")
    p.add_argument("--data-dir", metavar="DIR", help="folder searched first for the dataset")
    p.add_argument("--sizes", default="auto-50-50-auto", metavar="auto-50-50-auto",
                   help="layer widths; 'auto' takes DIMS inputs and the data's classes (default: %(default)s)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=True,
                   help="batch norm in the hidden layers (default: on)")
    p.add_argument("--lam", type=float, default=0.005, help="L2 penalty (default: %(default)s)")
    p.add_argument("--n", type=int, default=20, help="images (default: %(default)s)")
    p.add_argument("--batch-sizes", type=_int_list, metavar="N1,N2,...",
                   help="check the same network on the first N1, N2, ... images instead of --n, and print "
                        "one column per batch size")
    p.add_argument("--dims", type=int, default=50, help="first input features used (default: %(default)s)")
    p.add_argument("--h", type=float, default=1e-5, help="finite-difference step (default: %(default)s)")
    p.add_argument("--max-entries", type=int, metavar="K",
                   help="check at most K entries of each parameter, a seeded random subset (default: all)")
    p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                   help="FAIL (exit status 1) when a parameter's rel error, or the max abs error of an "
                        "identically-zero gradient, exceeds this (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seeds the weights (default: %(default)s)")
    p.add_argument("--dropout", type=_parse_dropout, default=0.0, metavar="RATE[,RATE...]",
                   help="dropout after the hidden layers, one fixed mask for the whole check "
                        "(default: %(default)s)")
    p.add_argument("--out", metavar="DIR", help="also write DIR/gradcheck.md and DIR/gradcheck.json")


def _int_list(text):
    """'10,20,30' -> [10, 20, 30]; anything else is left for run() to refuse in one line."""
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        return text


def run(args, say):
    """Print the table and the PASS/FAIL line; return the exit status (0 pass, 1 fail)."""
    _int("--seed", args.seed, 0, MAX_SEED)
    ns = args.batch_sizes if args.batch_sizes is not None else [args.n]
    if not isinstance(ns, list) or not 1 <= len(ns) <= MAX_BATCH_SIZES or len(set(ns)) != len(ns):
        raise ValueError(f"--batch-sizes must be 1 to {MAX_BATCH_SIZES} different integers joined by commas, "
                         f"e.g. 10,20,30; got {args.batch_sizes!r}.")
    if not isinstance(args.tol, float) or not 0 < args.tol < float("inf"):
        raise ValueError(f"--tol must be a finite number > 0; got {args.tol!r}. Use e.g. --tol 1e-6.")
    by_n, settings = check_batch_sizes(ns, args.dataset, args.sizes, args.batch_norm, args.lam, args.dims,
                                       args.seed, args.data_dir, args.dropout, args.h, args.max_entries)
    passed, line = verdict(by_n, args.tol)
    print(f"Gradient check: {describe(settings)}.\n")
    print(format_table(by_n[ns[0]], "text") if args.batch_sizes is None else batch_table(by_n, "text"))
    print(f"\n{line}")
    if args.out is not None:
        rows = by_n[ns[0]] if args.batch_sizes is None else None
        say("Wrote " + " ".join(map(str, write_report(args.out, rows, settings,
                                                      None if rows is not None else by_n, line))))
    return 0 if passed else 1
