"""fastmlp's training step when the cores are not all its own, on each threading layer Numba can
load, against NumPy and JAX (optional) under the same load.

A user's machine is rarely idle: a second training, a notebook, a browser.  A thread pool whose
parallel regions end in a barrier (OpenMP) waits at every product for a thread the OS has
switched out; one that lets the calling thread take unclaimed parts (TBB, XLA's pool) slows down
by the share of the cores it lost.  Three cases, each a fresh process per threading layer:

  alone      the step on a quiet machine (other processes of this script stopped)
  busy core  one process spinning on a core at the same priority, started first
  two runs   two copies of the same measurement at once (two trainings in two terminals)

    python bench/contention.py                       # 784-50-50-10 and 784-512-256-10, batch 100
    python bench/contention.py --nets 3072-1024-512-10 --batch 500 --layers tbb omp

Prints median ms per step; `x alone` = that case's time / the same layer's time alone.
"""
import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(net, batch, threads, seconds, peers):
    """One process: build the cell as bench/grid.py does, time each implementation for
    `seconds` seconds (interleaved rounds), print {name: ms per step} as JSON."""
    sys.path.insert(0, HERE)
    import numba
    import grid
    import impls
    from fastmlp.threads import threading_layer
    numba.set_num_threads(threads)
    runs, _, _ = grid.build(net, batch, peers, threads)
    runs.pop("blas")
    rounds = 5
    times = impls.interleaved(runs, rounds, steps=3, seconds=seconds / rounds / len(runs))
    print(json.dumps({"layer": threading_layer(), **{k: 1e3 * v for k, v in times.items()}}))


def spin():
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def measure(layer, net, batch, args, copies=1):
    env = dict(os.environ, NUMBA_THREADING_LAYER=layer)
    cmd = [sys.executable, __file__, "--worker", "--nets", net, "--batch", str(batch), "--threads",
           str(args.threads), "--seconds", str(args.seconds), "--peers", *args.peers]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        return None                          # this layer cannot load here
    results = [json.loads(o.strip().splitlines()[-1]) for o in outs]
    return {k: max(r[k] for r in results) if k != "layer" else results[0][k] for k in results[0]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nets", nargs="+", default=["784-50-50-10", "784-512-256-10"])
    p.add_argument("--batch", nargs="+", type=int, default=[100])
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--seconds", type=float, default=6.0, help="timed seconds per process")
    p.add_argument("--layers", nargs="+", default=["tbb", "omp", "workqueue"])
    p.add_argument("--peers", nargs="*", default=["numpy"], help="numpy and/or jax")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.nets[0], args.batch[0], args.threads, args.seconds, args.peers)
    print(f"{os.cpu_count()} cores, {args.threads} threads; median ms per step; x alone = case / alone")
    print("| net | batch | layer | case | fastmlp | x alone | " +
          " | ".join(f"{peer} | x alone" for peer in args.peers) + " |")
    print("|---|---|---|---|---|---|" + "---|---|" * len(args.peers))
    for net in args.nets:
        for batch in args.batch:
            for layer in args.layers:
                alone = measure(layer, net, batch, args)
                if alone is None:
                    print(f"| {net} | {batch} | {layer} | cannot load here |" + " |" * (1 + 2 * len(args.peers)))
                    continue
                busy = spin()
                time.sleep(0.5)
                try:
                    loaded = measure(layer, net, batch, args)
                finally:
                    busy.kill()
                two = measure(layer, net, batch, args, copies=2)
                for case, r in (("alone", alone), ("busy core", loaded), ("two runs", two)):
                    cells = [f"{r[name]:.3f} | {r[name] / alone[name]:.1f}x" for name in ["fastmlp", *args.peers]]
                    print(f"| {net} | {batch} | {alone['layer']} | {case} | " + " | ".join(cells) + " |",
                          flush=True)


if __name__ == "__main__":
    main()
