"""How many parts each task of the training step (kernels/step.py) is cut into, and how many
threads a run of steps keeps between its tasks (kernels/pool.py): by size, never "all
threads", so a part is worth handing to a thread on 2 cores as on 64.  Every task's result is
the same bits whatever its cut, so these choose speed only."""
import numpy as np

from ._config import internal_kernel, serial_kernel
from .simd import SIMD

# How many threads share a product: one part per PART_FLOPS multiply-adds, or per PART_WEIGHTS
# weights, up to the thread count; a smaller product runs whole on the calling thread.  By
# size, not "all threads": waking a thread for a part costs 5-10 us (measured, kernels/gemm.py's
# region after serial work), and 1M multiply-adds take ~10-20 us on one core, so a part never
# costs more to hand off than it computes (and each part packs its own share of both operands,
# so slivers multiply the packing: gemm._grid); on 2 threads these give the cut-offs measured here
# (2M multiply-adds, 128K weights), on 64 a 100 x 784 x 50 forward takes 3 parts, not 64.
# Weights: at a batch of a few rows a product is bound by reading its weights, and two cores
# read them faster than one (batch 1, 2 threads against 1, znver4: 512 x 256 forward 7 -> 10
# GFLOP/s, input gradient 9 -> 13; 1024 x 1024 5 -> 9 and 7 -> 13; at 256 x 256 level).
# Inputs: a layer of 1-3 units at a large batch is bound by reading its input (N x I values,
# which its forward and weight step each read), and so takes a part per PART_INPUTS of them
# (256K values, 1 MB in float32: ~20-40 us of reading on one core, against 5-10 us to wake a
# thread).  At 4 units or more PART_FLOPS gives as many parts.
PART_FLOPS = 1 << 20
PART_WEIGHTS = 1 << 16
PART_INPUTS = 1 << 18
PART_GATHER = 1 << 15   # values of a gather per part (a copy of 128 KB in float32)
# scores of the softmax per part (gemm's SOFTMAX task): ~4 ns each on one core, so a part of
# 4096 is ~16 us against the 6-11 us of handing it to a thread; 1024 x 10 scores take 2 parts
# (41 -> 27 us, znver5), 500 x 10 one (24 -> 21 us on two was not worth a thread)
PART_SOFTMAX = 1 << 12
# values of a batch norm per part (gemm's BN_FORWARD and BN_BACKWARD, in runs of columns):
# ~0.4-0.5 ns a value on one core, so a part of 128K is ~50-60 us, 5-10 times the hand-off.
# Measured on 2 threads (znver5, whole steps, 10 a call, against the same code on one part):
# 784-1024-1024-10 at 1024 1.22x, 100-4096-10 at 1024 1.31x, 3072-1024-512-10 at 500 1.05x;
# a part per 64K was 0.90x at 784-512-512-10 at 256 (1.05x at 784-1024-1024-10 at 128), so
# not that.  (Alone, on 2 threads: 500 x 1024 forward 1.2-1.5x, backward 1.2-1.6x.)
# Evaluation's (BN_INFER, runs of rows, ~0.3 ns a value) takes the same cut: alone, 8192 x
# 512 2.27 ms before (bias, then the serial twin) -> 1.30 on one part -> 0.76 on two
PART_BN = 1 << 17
# multiply-adds of a step per part up to which a run of steps keeps its threads between tasks
# (kernels/pool.py) rather than waking Numba's pool for each: the threads kept wait spinning,
# which pays where a step is short and its regions many for its length, and cost time where it
# is long (whole steps, znver5, 2 threads, interleaved against the same code without: 784-50-
# 50-10 at 100 (6M a part) 1.02-1.05x, 1.13x in a slow phase; 784-512-256-10 at 32 (26M)
# 1.06x, at 100 (80M) 1.01-1.05x; 3072-50-50-10 at 500 (118M) 0.99x; 784-512-256-10 at 500
# (400M) 0.98x; 3072-1024-512-10 at 100 (550M) 0.94-0.98x)
POOL_FLOPS = 1 << 27


@internal_kernel
def parts(size, per_part, nt):
    """Parts a product (or gather) of `size` is cut into: one per `per_part`, 1 to nt."""
    return max(1, min(nt, size // per_part))


@internal_kernel
def product_parts(N, I, O, nt):
    """Parts of a layer's product: by its multiply-adds, its weights or its inputs, whichever
    gives most."""
    # np.int64(): a module constant passed as it is is a literal, and each literal value
    # compiles a build of its own (three of parts: ~0.2 s of the first run)
    return max(parts(N * I * O, np.int64(PART_FLOPS), nt),
               parts(I * O, np.int64(PART_WEIGHTS), nt),
               parts(N * I, np.int64(PART_INPUTS), nt))


@internal_kernel
def bn_parts(values, units, nt):
    """Parts of a batch norm of `values` values: one per PART_BN, at most one per unit it is
    cut in (training: a 64-byte line of a row's columns; evaluation: a row)."""
    return max(1, min(parts(values, np.int64(PART_BN), nt), units))


@internal_kernel
def softmax_parts(N, C, nt):
    """Parts of the softmax of N rows of C scores (runs of rows): one per PART_SOFTMAX scores,
    no more than rows (a batch of a few rows of many classes)."""
    return max(1, min(N, parts(N * C, np.int64(PART_SOFTMAX), nt)))


@serial_kernel
def kept_threads(layout, N, nt):
    """How many threads a run of training steps at batch N keeps beside the caller
    (kernels/pool.py): one fewer than the most parts any of its tasks cuts into (more would
    only wait), and none where a step's multiply-adds exceed POOL_FLOPS a part, or without
    the vector kernels (whose products run on one thread)."""
    if not SIMD:
        return 0
    C = layout[layout.shape[0] - 1, 1]
    most = max(parts(N * layout[0, 0], np.int64(PART_GATHER), nt),
               softmax_parts(N, C, nt))
    flops = 0
    for l in range(layout.shape[0]):
        I, O = layout[l, 0], layout[l, 1]
        flops += 3 * N * I * O      # the forward, the input gradient, the weights'
        # a batch norm is cut by rows or by lines of a row: N + O bounds both counts
        most = max(most, product_parts(N, I, O, nt), bn_parts(N * O, N + O, nt))
    return most - 1 if flops <= most * POOL_FLOPS else 0
