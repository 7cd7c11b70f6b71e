"""`fastmlp gradcheck`: the per-parameter gradient table of any architecture on real images.

The data is the first `n` training rows and first `dims` features of a dataset, standardised
with its training statistics, in float64; the network is built with `sizes` ('auto' at either
end takes `dims` and the number of classes) and checked with fastmlp.gradcheck.
"""
import os
from pathlib import Path

from ..gradcheck import format_table, gradcheck
from .._checks import check_nonnegative
from ..checkpoint import atomic_write_text
from ..config import TrainConfig, _int, parse_sizes
from ..network import Network
from ..run import load_data
from .report import write_json

ENV_SHARED = "FASTMLP_SHARED_DATA"


def default_dataset():
    """The real CIFAR-10 subset if it is there ($FASTMLP_SHARED_DATA, else ../shared/data beside the
    repository), else the embedded sample."""
    here = Path(os.environ.get(ENV_SHARED, Path(__file__).resolve().parents[3] / "shared" / "data"))
    subset = here / "cifar10-subset.npz"
    return str(subset) if subset.is_file() else "sample"


def check_gradients(dataset=None, sizes="auto-50-50-auto", batch_norm=True, lam=0.005, n=20, dims=50,
                    seed=0, data_dir=None, dropout=0.0):
    """(rows, settings): fastmlp.gradcheck's rows and what was checked, for the report."""
    _int("n", n, 1)
    _int("dims", dims, 1)
    check_nonnegative(lam, "lam")       # cheap checks before the data loads
    parse_sizes(sizes)
    config = TrainConfig(dataset=dataset or default_dataset(), data_dir=data_dir, dtype="float64",
                         seed=seed).validate()
    splits = load_data(config)
    n_train, n_features = splits.X_train.shape
    if n > n_train or dims > n_features:
        raise ValueError(f"n must be <= the {n_train} training rows and dims <= the {n_features} features "
                         f"of {config.dataset}; got n={n}, dims={dims}.")
    widths = parse_sizes(sizes)
    if widths[0] not in ("auto", dims) or widths[-1] not in ("auto", splits.n_classes):
        raise ValueError(f"sizes must start with dims={dims} inputs and end with the "
                         f"{splits.n_classes} classes (or 'auto' there); got sizes={sizes!r}.")
    widths[0], widths[-1] = dims, splits.n_classes
    # with dropout, every forward of the check uses the masks of the network's drop_key: fixed
    net = Network(widths, batch_norm, "he", "float64", seed, dropout=dropout)
    X, y = splits.X_train[:n, :dims].copy(), splits.y_train[:n]
    rows = gradcheck(net, X, y, lam=lam)
    settings = {"dataset": config.dataset, "source": splits.source, "sizes": widths,
                "batch_norm": batch_norm, "lam": lam, "n": n, "dims": dims, "seed": seed, "h": 1e-5,
                "dropout": list(net.dropout)}
    return rows, settings


def describe(settings):
    s = settings
    return (f"{'-'.join(map(str, s['sizes']))} {'with' if s['batch_norm'] else 'without'} batch norm, "
            f"{_dropout_text(s)}lam={s['lam']:g}, {s['n']} images x first {s['dims']} features of {s['dataset']}, "
            f"seed {s['seed']}, h={s['h']:g}")


def _dropout_text(s):
    rates = s.get("dropout") or []
    if not any(rates):
        return ""
    shown = f"{rates[0]:g}" if len(set(rates)) == 1 else ",".join(f"{r:g}" for r in rates)
    return f"dropout {shown} (one fixed mask), "


def write_report(out, rows, settings):
    """gradcheck.md (the table under a line of settings) and gradcheck.json; returns the paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    md = out / "gradcheck.md"
    atomic_write_text(md, f"Gradient check: {describe(settings)}.\n\n{format_table(rows)}\n")
    write_json(out / "gradcheck.json", {"settings": settings, "rows": rows})
    return md, out / "gradcheck.json"
