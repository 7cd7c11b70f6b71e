"""Where a training step's time goes, by compiled function, from Linux `perf`.

Numba's code is compiled in memory, so `perf report` shows its samples as bare addresses.
`perf_map` writes /tmp/perf-<pid>.map, perf's file for code made at run time (a line per
function: start, size, name), for every function of every Numba code library the process
holds, cached ones included; perf then names fastmlp's kernels.  `main` trains a net on
random rows (a run of gathered steps, as `fastmlp train` takes them), attaches `perf record`
to itself for --seconds, and prints each function's share of the samples, on the main thread
and on the others.

    python bench/profile_step.py --sizes 784-512-256-10 --batch 500 --seconds 10

Needs `perf` (Debian: linux-perf) and the right to read this process's events
(kernel.perf_event_paranoid <= 2, or root).  Run it under `env -u OPENBLAS_CORETYPE -u
OPENBLAS_L2_SIZE` as every other benchmark here (bench/grid.py: why).
"""
import argparse
import gc
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def map_path():
    """Where perf looks for this process's map of code made at run time."""
    return Path(f"/tmp/perf-{os.getpid()}.map")


def perf_map(path=None):
    """Write perf's map of every Numba-compiled function in this process to `path` (default
    map_path(), where perf looks); returns how many functions it names.  A library
    loaded from Numba's cache keeps its functions' IR beside the object code (_shared_module),
    so both kinds are found; each function runs to the next one's start (the JIT engine lays
    them out one after another; a map with no sizes is not read)."""
    from numba.core import codegen
    libraries = []
    for obj in gc.get_objects():
        try:
            if isinstance(obj, codegen.CodeLibrary):
                libraries.append(obj)
        except ReferenceError:      # a weak proxy whose library is gone
            pass
    names = {}
    for library in libraries:
        engine = library._codegen._engine
        for module in (getattr(library, "_shared_module", None),
                       getattr(library, "_final_module", None)):
            for fn in (module.functions if module is not None else ()):
                if not fn.is_declaration and engine.is_symbol_defined(fn.name):
                    names[engine.get_function_address(fn.name)] = fn.name
    starts = sorted(a for a in names if a)
    with open(path or map_path(), "w") as f:
        for a, b in zip(starts, starts[1:] + [starts[-1] + (1 << 16)] if starts else []):
            f.write(f"{a:x} {min(b - a, 1 << 20):x} {names[a]}\n")
    return len(starts)


def short_name(symbol):
    """numba's mangled `_ZN7fastmlp7kernels4gemm4_runB2v1B122c8t...` -> fastmlp.kernels.gemm._run
    (its path's parts, length-prefixed, up to the first B or E); anything else unchanged."""
    if not symbol.startswith("_ZN"):
        return symbol
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        n = re.match(r"\d+", symbol[i:]).group()
        i += len(n)
        parts.append(symbol[i:i + int(n)])
        i += int(n)
    return ".".join(parts) or symbol


def trainer(sizes, batch, rows, steps_a_call=10, seed=0):
    """A function of `seconds` that trains a batch-norm net on `rows` random rows in calls of
    steps_a_call gathered steps for that long (at least one call) and returns the median ms a
    step of its calls."""
    import fastmlp
    rng = np.random.default_rng(seed)
    net = fastmlp.Network(sizes, batch_norm=True, seed=seed)
    src = rng.standard_normal((rows, sizes[0]), dtype=np.float32)
    labels = rng.integers(0, sizes[-1], rows)
    done = [0]

    def run(seconds):
        times, end = [], time.perf_counter() + seconds
        while not times or time.perf_counter() < end:
            at = rng.integers(0, rows, steps_a_call * batch)
            t = done[0]
            start = time.perf_counter()
            net._train_steps(src, labels[at], 1e-3, np.full(steps_a_call, 0.01), at, net._sgd,
                             t, np.arange(t, t + steps_a_call, dtype=np.uint64),
                             np.empty(steps_a_call))
            times.append((time.perf_counter() - start) / steps_a_call)
            done[0] += steps_a_call
        return 1e3 * float(np.median(times))
    return run


def report(data, top):
    """perf's samples by function, on this process's main thread or on the others (the
    threads a run of steps keeps are new ones each call, so they are summed), the functions
    named short, the `top` first."""
    out = subprocess.run(["perf", "report", "-i", data, "--sort", "pid,sym", "--stdio"],
                         capture_output=True, text=True, check=True).stdout
    shares = {}
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\d+):\S+\s+\[(.)\]\s+(.*)", line)
        if m:
            key = ("main" if int(m.group(2)) == os.getpid() else "other", m.group(3),
                   short_name(m.group(4)))
            shares[key] = shares.get(key, 0.0) + float(m.group(1))
    print("% of all samples | thread: main or the others | k: in the kernel, .: user space")
    for (thread, where, name), share in sorted(shares.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{share:6.2f} | {thread:5s} | {where} | {name[:100]}")
    return shares


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="3072-50-50-10")
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--rows", type=int, default=60000, help="rows of the random data set")
    p.add_argument("--seconds", type=float, default=10.0, help="seconds recorded")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--top", type=int, default=25)
    args = p.parse_args(argv)
    if shutil.which("perf") is None:
        sys.exit("profile_step: `perf` is not installed (Debian/Ubuntu: apt install linux-perf)")
    sizes = [int(s) for s in args.sizes.split("-")]
    if args.threads:
        import numba
        numba.set_num_threads(args.threads)
    run = trainer(sizes, args.batch, args.rows)
    run(1.0)            # compiled and warm
    print(f"perf map: {perf_map()} compiled functions named")
    try:
        _record(run, args)
    finally:        # perf reads the map when it reports, not after
        map_path().unlink(missing_ok=True)


def _record(run, args):
    """perf record attached to this process while `run` trains for args.seconds, then the
    report."""
    with tempfile.TemporaryDirectory() as tmp:
        data = os.path.join(tmp, "perf.data")
        rec = subprocess.Popen(["perf", "record", "-q", "-o", data, "-p", str(os.getpid())],
                               stdout=subprocess.DEVNULL)
        time.sleep(0.5)     # perf attached
        ms = run(args.seconds)
        rec.send_signal(signal.SIGINT)
        if rec.wait() not in (0, -signal.SIGINT):  # perf ends by raising the signal again
            sys.exit(f"profile_step: perf record failed (exit {rec.returncode}); "
                     "kernel.perf_event_paranoid may forbid it: run as root or lower it")
        print(f"{args.sizes} at batch {args.batch}: {ms:.3f} ms a step (median of calls of 10)")
        report(data, args.top)


if __name__ == "__main__":
    main()
