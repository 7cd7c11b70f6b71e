"""Counter-based random numbers for kernels: dropout masks and augmentation draws.

Why not np.random inside kernels: Numba gives each thread its own generator state, so draws
would depend on which thread ran which row, and a resumed run could not rebuild a step's draws.
Here draw i of stream `key` is a pure function, the SplitMix64 output for state key + (i+1)*G:
any thread can compute any draw, a run is the same bits with 1 or 2 threads, and the NumPy twins
in the tests (tests/reference.py) compute the same numbers.

Keys: `stream_key(seed, step, stream)` names one step's draws of one consumer (dropout of layer
l, the augmentation of a batch, ...); all arithmetic wraps modulo 2**64.
"""
import numpy as np

from ._config import serial_kernel

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_TO_UNIT = 1.0 / 9007199254740992.0      # 2**-53


@serial_kernel
def mix64(z):
    """The SplitMix64 finaliser: a bijection of uint64 that scrambles every bit."""
    z = np.uint64(z)
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@serial_kernel
def stream_key(seed, step, stream):
    """The key of one consumer's draws at one training step."""
    k = mix64(np.uint64(seed) + GOLDEN)
    k = mix64(k + np.uint64(step) * GOLDEN + GOLDEN)
    return mix64(k + np.uint64(stream) * GOLDEN + GOLDEN)


@serial_kernel
def bits53(key, i):
    """Draw i of stream `key` as the integer m < 2**53 that `uniform` scales by 2**-53."""
    return mix64(np.uint64(key) + (np.uint64(i) + np.uint64(1)) * GOLDEN) >> np.uint64(11)


@serial_kernel
def uniform(key, i):
    """Draw i of stream `key`: a float64 in [0, 1) with 53 random bits."""
    return float(bits53(key, i)) * _TO_UNIT


@serial_kernel
def below(p):
    """The integer t with uniform(key, i) < p exactly when bits53(key, i) < t, for p in [0, 1]:
    m * 2**-53 < p <=> m < p * 2**53 (exact: a power-of-two scaling) <=> m < ceil(p * 2**53).
    Comparing integers saves the conversion to float, which AVX2 has no vector form of."""
    return np.uint64(np.ceil(p * 9007199254740992.0))


@serial_kernel
def sub_key(key, i):
    """The key of the i-th sub-stream of `key` (e.g. one layer's dropout in a step)."""
    return mix64(np.uint64(key) + (np.uint64(i) + np.uint64(1)) * GOLDEN)
