"""fastmlp against PyTorch eager and a textbook NumPy step, interleaved in one process.

    python bench/peers.py [--batch 100 500] [--threads 2] [--rounds 15] [--steps 20]

For every net and batch size, each round runs `steps` training steps of every implementation
in a freshly shuffled order, and the table reports the median over rounds of the time per
step, with the ratio of each peer's median to fastmlp's.  Before each timed block an
implementation runs untimed for impls.WARM seconds: the thread pools of the one that ran before
(OpenBLAS's spin for ~0.1 s after their last call) would otherwise be timed as part of
whichever comes next, and a training loop runs one implementation at a time anyway.
Measured here: fastmlp right after NumPy's steps was 2.7x slower than in steady state.  PyTorch is optional
(pip install torch==2.13.0); without it its column is left out.
"""
import argparse
import sys
from pathlib import Path

import numba
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impls  # noqa: E402



def compare(net_name, batch, rounds, steps, use_torch):
    X, y = impls.batch(batch)
    fast, net = impls.make_fastmlp(net_name, X, y)
    runs = {"fastmlp": (fast, True), "numpy": (impls.make_numpy(net_name, X, y, like=net)[0], False)}
    if use_torch:
        runs["torch"] = (impls.make_torch(net_name, X, y, like=net)[0], False)
    return impls.interleaved(runs, rounds, steps=steps)

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, nargs="+", default=[100, 500])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--nets", nargs="+", default=sorted(impls.NETS))
    args = p.parse_args(argv)
    numba.set_num_threads(args.threads)
    use_torch = impls.torch_available()
    if use_torch:
        import torch
        torch.set_num_threads(args.threads)
    from threadpoolctl import threadpool_limits
    threadpool_limits(args.threads, user_api="blas")      # NumPy's BLAS gets the same cores
    peers = ["torch", "numpy"] if use_torch else ["numpy"]
    print(f"threads {args.threads}, float32, median ms per training step over {args.rounds} "
          f"interleaved rounds of {args.steps} steps; ratio = peer / fastmlp; numba "
          f"{numba.__version__}, numpy "
          f"{np.__version__}" + (f", torch {torch.__version__}" if use_torch else ""))
    head = "| net | batch | fastmlp | " + " | ".join(f"{p_} | ratio" for p_ in peers) + " |"
    print(head)
    print("|" + "---|" * (3 + 2 * len(peers)))
    for net_name in args.nets:
        for batch in args.batch:
            med = compare(net_name, batch, args.rounds, args.steps, use_torch)
            cells = " | ".join(f"{med[p_] * 1e3:.3f} | {med[p_] / med['fastmlp']:.2f}x" for p_ in peers)
            print(f"| {net_name} | {batch} | {med['fastmlp'] * 1e3:.3f} | {cells} |", flush=True)
    print(f"Numba threading layer: {numba.threading_layer()}")


if __name__ == "__main__":
    main()
