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
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

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
def sub_key(key, i):
    """The key of the i-th sub-stream of `key` (e.g. one layer's dropout in a step)."""
    return mix64(np.uint64(key) + (np.uint64(i) + np.uint64(1)) * GOLDEN)


# ---- 32-bit draws: dropout masks ---------------------------------------------------------------
# Numba widens uint32 arithmetic to 64 bits, and 64-bit multiplies have no vector instruction
# before AVX-512 (LLVM emulates each with 3 multiplies of 32 bits), so SplitMix64 cost a
# dropout mask ~2.5 ns a unit on one znver3 core.  Dropout needs one comparison per unit, for
# which 32 random bits are plenty (the rate is then exact to 2**-32): written in LLVM's own
# 32-bit integers, the hash below runs on 8 lanes of native multiplies.
_LOWBIAS = (0x7FEB352D, 0x846CA68B)     # Chris Wellons' "lowbias32" (hash-prospector)


def _lowbias32(builder, x):
    i32 = x.type
    for shift, mul in ((16, _LOWBIAS[0]), (15, _LOWBIAS[1])):
        x = builder.xor(x, builder.lshr(x, ir.Constant(i32, shift)))
        x = builder.mul(x, ir.Constant(i32, mul))
    return builder.xor(x, builder.lshr(x, ir.Constant(i32, 16)))


@intrinsic
def bits32(typingctx, key, i):
    """Draw i (int64, < 2**32) of 32-bit stream `key` (uint64): lowbias32(lowbias32(i * G32 +
    high half of key) ^ low half of key), a uint32.  tests/reference.py has its NumPy twin."""
    if key != types.uint64 or i != types.int64:
        return None

    def codegen(context, builder, sig, args):
        k, idx = args
        i32 = ir.IntType(32)
        lo = builder.trunc(k, i32)
        hi = builder.trunc(builder.lshr(k, ir.Constant(k.type, 32)), i32)
        x = builder.add(builder.mul(builder.trunc(idx, i32), ir.Constant(i32, 0x9E3779B9)), hi)
        return _lowbias32(builder, builder.xor(_lowbias32(builder, x), lo))
    return types.uint32(types.uint64, types.int64), codegen


@serial_kernel
def below32(p):
    """The uint32 t with bits32 < t for a fraction p of draws: ceil(p * 2**32), for p in [0, 1)
    (a p within 2**-32 of 1 keeps the draw 2**32 - 1).  Comparing integers saves a conversion
    to float, which AVX2 has no vector form of for 64-bit integers."""
    return np.uint32(min(np.ceil(p * 4294967296.0), 4294967295.0))
