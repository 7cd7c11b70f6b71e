"""Analytic gradients against centred finite differences, in float64.

ReLU kinks: a centred difference is only a derivative where the cost is smooth over
[theta - h, theta + h].  If nudging an entry by +h or -h switches any hidden ReLU unit on or
off (its input crosses 0), the difference straddles a kink and says nothing about the
gradient, so that entry is left out of the comparison and counted in `n_kinks`.  With
h = 1e-5 on real data this is rare (usually none); a table with many kinks means a
pre-activation sits at 0 and the check should be rerun with another seed or batch.
"""
import re

import numpy as np

from . import _checks
from .threads import blas_single_threaded
from .table import format_table as table

KEYS = ("param", "layer", "shape", "n_checked", "n_kinks", "zero_gradient", "rel_error",
        "max_abs_error", "max_entry_rel_error")


def gradcheck(net, X, y, lam=0.0, h=1e-5, max_entries=None, seed=0):
    """Compare `net`'s analytic gradient of the training cost with centred differences.

    The check runs on a float64 copy of `net` (its own parameters are not touched) in training
    mode: batch-norm uses the batch's statistics and its running statistics are not updated.
    max_entries: check at most this many entries per parameter, a seeded random subset
    (for a wide first layer); None checks every entry.

    Returns one dict per parameter with the keys
      param, layer, shape, n_checked, n_kinks,
      zero_gradient        True where the true gradient is identically zero by construction
                           (the bias of a layer followed by batch norm: BN subtracts it again),
      rel_error            ||ga - gn||_2 / (||ga||_2 + ||gn||_2) over the checked entries,
      max_abs_error        max |ga - gn|,
      max_entry_rel_error  max |ga - gn| / max(1e-12, |ga| + |gn|).
    Where the true gradient is identically zero (the bias of a layer followed by batch norm)
    rel_error compares rounding noise with rounding noise; read max_abs_error there.
    """
    h = _checks.check_nonnegative(h, "h")
    if h == 0:
        raise ValueError("h must be > 0 (the finite-difference step); got 0.")
    if max_entries is not None and (not isinstance(max_entries, int) or max_entries < 1):
        raise ValueError(f"max_entries must be None or a positive integer; got {max_entries!r}.")
    lam = _checks.check_nonnegative(lam, "lam")
    net64 = net.copy(dtype=np.float64)
    X, y = net64._checked(X, y)
    with blas_single_threaded():     # once here, not once per finite difference
        return _compare(net64, X, y, lam, h, max_entries, seed)


def _compare(net64, X, y, lam, h, max_entries, seed):

    def cost():
        return net64._forward_train(X, y, update_stats=False) + lam * net64.l2()

    net64._forward_train(X, y, update_stats=False)
    net64._backward(y, lam)
    base_pattern = net64.relu_pattern()
    rng = np.random.default_rng(seed)
    rows = []
    for name, param in net64.params.items():
        flat = param.reshape(-1, order="A")                  # a view: writes go into net64.theta
        if max_entries is None or flat.size <= max_entries:
            idx = np.arange(flat.size)
        else:
            idx = np.sort(rng.choice(flat.size, size=max_entries, replace=False))
        ga = net64.grads[name].reshape(-1, order="A")[idx].copy()
        gn = np.empty(idx.size)
        smooth = np.ones(idx.size, bool)
        for j, i in enumerate(idx):
            old = flat[i]
            flat[i] = old + h
            c_plus = cost()
            smooth[j] = np.array_equal(net64.relu_pattern(), base_pattern)
            flat[i] = old - h
            c_minus = cost()
            smooth[j] &= np.array_equal(net64.relu_pattern(), base_pattern)
            flat[i] = old
            gn[j] = (c_plus - c_minus) / (2 * h)
        row = _row(name, param.shape, ga[smooth], gn[smooth], int((~smooth).sum()))
        row["zero_gradient"] = (net64.batch_norm and re.fullmatch(r"b\d+", name) is not None
                                and row["layer"] < net64.n_layers)
        rows.append(row)
    return rows


def _row(name, shape, ga, gn, n_kinks):
    diff = np.abs(ga - gn)
    denom = np.linalg.norm(ga) + np.linalg.norm(gn)
    return {
        "param": name,
        "layer": int(re.search(r"\d+$", name).group()),
        "shape": tuple(shape),
        "n_checked": int(ga.size),
        "n_kinks": n_kinks,
        "rel_error": float(np.linalg.norm(ga - gn) / denom) if denom > 0 else 0.0,
        "max_abs_error": float(diff.max()) if diff.size else 0.0,
        "max_entry_rel_error": float((diff / np.maximum(1e-12, np.abs(ga) + np.abs(gn))).max())
        if diff.size else 0.0,
    }


def failures(rows, tol):
    """[(param, error)] of the rows whose error exceeds tol: rel_error, or max_abs_error where the true
    gradient is identically zero (its rel error compares rounding noise with rounding noise)."""
    errors = ((r["param"], r["max_abs_error"] if r.get("zero_gradient") else r["rel_error"]) for r in rows)
    return [(param, e) for param, e in errors if not e <= tol]     # `not <=`: a NaN error fails too


def format_table(rows, style="markdown"):
    """The gradient table, one row per parameter (Markdown, or aligned text with style="text")."""
    cells = []
    for r in rows:
        # rel errors of an identically-zero gradient compare rounding noise with rounding noise
        rel, entry = ((f"{r['rel_error']:.2e}", f"{r['max_entry_rel_error']:.2e}")
                      if not r.get("zero_gradient") else ("(grad = 0)", "(grad = 0)"))
        cells.append([r["layer"], r["param"], "x".join(map(str, r["shape"])), r["n_checked"], r["n_kinks"],
                      rel, f"{r['max_abs_error']:.2e}", entry])
    return table(["layer", "param", "shape", "checked", "kinks", "rel error", "max abs error",
                  "max entry rel error"], cells, style)
