"""What bounds net A's step: its first layer's two products alone, timed interleaved with
fastmlp's whole step and PyTorch's (batch 100, float32, 2 threads, median ms over 15 rounds
of 20 calls, each after 0.1 s untimed).  The products are the very calls the step makes
(gemm.products' forward and folded SGD step), in this CPU's build: register-blocked with AVX2
and FMA, else BLAS.  NUMBA_CPU_NAME=nehalem runs the BLAS build on any x86-64 machine.

    python bench/floor.py
"""
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import impls  # noqa: E402
from fastmlp.kernels import gemm, tasks  # noqa: E402
from fastmlp.threads import blas_single_threaded  # noqa: E402

ETA = 1e-6      # small: the weights barely move over the many timed calls


def main():
    X, y = impls.batch(100)
    rng = np.random.default_rng(0)
    WT = (rng.standard_normal((50, 3072)) * 0.02).astype(np.float32)
    Z, dZ = np.empty((100, 50), np.float32), rng.standard_normal((100, 50)).astype(np.float32)

    def products():
        tasks.dot_nt(Z, X, WT, 2)
        tasks.weight_sgd_step(WT, X, dZ, 0.0, ETA, 2)

    cases = {"first-layer products": products, "fastmlp step": impls.make_fastmlp("A", X, y)[0]}
    if impls.torch_available():
        cases["torch step"] = impls.make_torch("A", X, y)[0]
    times = {name: [] for name in cases}
    for _ in range(15):
        for name, run in cases.items():
            with blas_single_threaded() if name != "torch step" else _nothing():
                start = time.perf_counter()
                while time.perf_counter() - start < 0.1:
                    run()
                start = time.perf_counter()
                for _ in range(20):
                    run()
                times[name].append((time.perf_counter() - start) / 20 * 1e3)
    med = {name: float(np.median(t)) for name, t in times.items()}
    build = "register-blocked" if gemm.SIMD else "BLAS"
    flops = 2 * 2 * 100 * 3072 * 50
    for name, m in med.items():
        rate = f"  ({flops / m / 1e6:.0f} GFLOP/s, {build})" if name.startswith("first") else ""
        print(f"{name:22s} {m:.3f} ms{rate}")
    if "torch step" in med:
        print(f"torch / fastmlp {med['torch step'] / med['fastmlp step']:.2f}x; torch / products alone "
              f"{med['torch step'] / med['first-layer products']:.2f}x (the ceiling)")


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


if __name__ == "__main__":
    main()
