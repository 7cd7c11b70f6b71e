"""fastmlp against NumPy, JAX and PyTorch over a grid of MLP shapes and batch sizes, and against the
BLAS itself on each cell's products, interleaved in one process.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/grid.py [--nets 784-50-50-10 ...]
        [--batch 32 100 500] [--threads 2] [--rounds 9] [--block 0.1] [--peers numpy jax torch]
        [--no-bn] [--rule sgd|nesterov|adam]

Every net has Linear -> BatchNorm -> ReLU hidden layers (Linear -> ReLU with --no-bn), softmax
cross-entropy, L2 (lam = 0.005) and plain SGD (`--rule`: SGD with Nesterov momentum 0.9, or Adam,
each as PyTorch's optimiser computes it, bench/rules.py), float32, all implementations starting
from fastmlp's weights; each one's first two steps must give fastmlp's first two losses (rel
2e-4, abs 1e-4; the second follows from the first update) or the cell is refused.
The peers are written as their users would at their best: NumPy textbook (bench/impls.NumpyMLP),
JAX with the whole step under `jax.jit`, data on the device and parameters donated, PyTorch eager
with `torch.set_num_threads` and `torch.optim`. Optional ones that are not installed are left
out.

Each round runs every implementation once, in a fresh random order, for a timed block of at least
`--block` seconds, after WARM seconds untimed (the previous one's spinning thread pools would
otherwise be billed to it); a cell reports the median over rounds of the time per step.

"blas" is the same cell's matrix products alone through NumPy's BLAS on `--threads` threads: per
layer the forward H (N, I) @ W (I, O), the weight gradient H^T @ dZ and, but for the first layer,
the input gradient dZ @ W^T.  `blas GF/s` is their FLOPs over that time, `fastmlp GF/s` the
same FLOPs over fastmlp's whole step, and `of BLAS` the ratio of the two: the fraction of the
BLAS's own rate that fastmlp's step reaches on the same products (everything else it does
counts against it).  `x best` is the fastest peer's time over fastmlp's.  The host's own float32
GEMM rate (2048^3 through NumPy's BLAS) is printed before and after the table: the machine's
speed drifts, so read the ratios, and the absolute times against it.
"""
import argparse
import contextlib
import os
import platform
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impls  # noqa: E402  (imports JAX and PyTorch only when a peer is built)
import recipe_jax  # noqa: E402  (imports JAX only when its recipe runs)
from fastmlp.threads import blas_single_threaded  # noqa: E402

NETS = ["784-50-50-10", "3072-50-50-10", "3072-50-30-20-20-10-10-10-10-10", "784-512-256-10",
        "3072-256-256-10", "3072-1024-512-10"]


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nets", nargs="+", default=NETS)
    p.add_argument("--batch", type=int, nargs="+", default=[32, 100, 500])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--block", type=float, default=0.1, help="seconds per timed block (at least)")
    p.add_argument("--peers", nargs="+", default=["numpy", "jax", "torch"])
    p.add_argument("--no-bn", action="store_true",
                   help="Linear -> ReLU hidden layers, no batch norm")
    p.add_argument("--rule", choices=impls.rules.RULES, default="sgd",
                   help="the optimiser every implementation steps with")
    return p.parse_args(argv)


def products(sizes, N, dtype=np.float32, seed=0):
    """The cell's products through NumPy's BLAS (see the module's docstring), and their FLOPs."""
    rng = np.random.default_rng(seed)
    layers = []
    flops = 0
    for l, (I, O) in enumerate(zip(sizes[:-1], sizes[1:])):
        H = rng.standard_normal((N, I)).astype(dtype)
        W = rng.standard_normal((I, O)).astype(dtype)
        dZ = rng.standard_normal((N, O)).astype(dtype)
        out = (np.empty((N, O), dtype), np.empty((I, O), dtype), np.empty((N, I), dtype))
        layers.append((l, H, W, dZ, out))
        flops += 2 * N * I * O * (2 if l == 0 else 3)

    def run():
        for l, H, W, dZ, (Z, dW, dH) in layers:
            np.matmul(H, W, out=Z)
            np.matmul(H.T, dZ, out=dW)
            if l:
                np.matmul(dZ, W.T, out=dH)
        return 0.0
    return run, flops


def build(net, N, peers, threads, bn=True, rule="sgd"):
    sizes = [int(s) for s in net.split("-")]
    X, y = impls.batch(N, d=sizes[0], classes=sizes[-1])
    spec = (sizes, bn)
    fast, fnet = impls.make_fastmlp(spec, X, y, rule=rule)
    ref = fnet.copy()
    expected = ref.loss(X, y, train=True)
    runs = {"fastmlp": (fast, True)}
    makers = {"numpy": impls.make_numpy, "jax": impls.make_jax, "torch": impls.make_torch}
    refused = {}
    for name in ["fastmlp"] + list(peers):
        try:
            if name != "fastmlp":
                runs[name] = (makers[name](spec, X, y, like=ref, rule=rule)[0], False)
            step, single = runs[name]
            with blas_single_threaded() if single else contextlib.nullcontext():
                losses = (step(), step())
        except Exception as e:      # a peer that refuses the cell (PyTorch's BN at batch 1)
            if name == "fastmlp":
                raise
            runs.pop(name, None)
            refused[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:100]}"
            continue
        if name == "fastmlp":       # the second loss follows from the first step's update
            expected = (expected, losses[1])
        # atol: Adam's first step can take a wide net's loss on a small batch to ~1e-5
        if not np.allclose(losses, expected, rtol=2e-4, atol=1e-4):
            raise SystemExit(f"{name} on {net} batch {N}: first two losses {losses} but "
                             f"fastmlp's give {expected}; not timing a different computation.")
    blas, flops = products(sizes, N)
    runs["blas"] = (blas, False)
    return runs, flops, refused


def cell(net, N, peers, threads, rounds, block, bn=True, rule="sgd"):
    runs, flops, refused = build(net, N, peers, threads, bn, rule)
    return impls.interleaved(runs, rounds, steps=3, seconds=block), flops, refused


def environment(threads, peers):
    """What the figures depend on, printed above the table."""
    import numba
    from fastmlp.kernels import gemm, simd
    import llvmlite.binding as ll
    lines = [f"python {platform.python_version()}, numpy {np.__version__}, numba {numba.__version__}, "
             f"CPU {ll.get_host_cpu_name()}, {os.cpu_count()} cores, threads {threads}, float32; "
             f"fastmlp build: {'register-blocked, ' + str(simd.VECTOR_BYTES) + '-byte vectors' if gemm.SIMD else 'one BLAS call a product'}"]
    for name in peers:
        mod = __import__(name)
        lines.append(f"{name} {mod.__version__}")
    return lines + impls.blas_lines()


def main(argv=None):
    args = parse_args(argv)
    recipe_jax.limit_threads(args.threads)     # before any peer starts its thread pools
    available = {"numpy": lambda: True, "jax": impls.jax_available, "torch": impls.torch_available}
    peers = [p for p in args.peers if available[p]()]
    import numba
    from threadpoolctl import threadpool_limits
    numba.set_num_threads(args.threads)
    threadpool_limits(args.threads, user_api="blas")     # NumPy's BLAS gets the same cores
    if "torch" in peers:
        import torch
        torch.set_num_threads(args.threads)
    for line in environment(args.threads, peers):
        print(line)
    print(impls.host_gemm_line(args.threads, " before the table"))
    print(f"median ms per training step ({args.rule}) over {args.rounds} interleaved rounds; "
          f"x best = fastest peer / fastmlp")
    cols = ["net", "batch", "fastmlp"] + peers + ["x best", "blas", "blas GF/s", "fastmlp GF/s",
                                                  "of BLAS"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    notes = []
    for net in args.nets:
        for N in args.batch:
            med, flops, refused = cell(net, N, peers, args.threads, args.rounds, args.block,
                                       not args.no_bn, args.rule)
            f = med["fastmlp"]
            ran = [p for p in peers if p in med]
            best = min(med[p] for p in ran) if ran else float("nan")
            row = [net, str(N), f"{f * 1e3:.3f}"] + [f"{med[p] * 1e3:.3f}" if p in med else "-"
                                                    for p in peers]
            row += [f"{best / f:.2f}x", f"{med['blas'] * 1e3:.3f}", f"{flops / med['blas'] / 1e9:.0f}",
                    f"{flops / f / 1e9:.0f}", f"{med['blas'] / f:.0%}"]
            print("| " + " | ".join(row) + " |", flush=True)
            notes += [f"{net} batch {N}: {p} refused the cell ({why})"
                      for p, why in refused.items()]
    print(impls.host_gemm_line(args.threads, " after the table"))
    for line in notes:
        print(line)


if __name__ == "__main__":
    main()
