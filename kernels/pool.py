"""Threads that stay for a run of training steps and take parts of its parallel tasks.

Why: a run of steps of a small net (the study's 784-50-50-10 at batch 100) wakes Numba's pool
for two parts twice a step, around ~45 us of serial work on the calling thread, and a region
started after serial work costs 6-16 us (kernels/gemm.py's region, measured on TBB): a tenth
of the step.  Here the calling thread runs the step as before, and where it would start a
region it posts the task to threads that wait for it, spinning, and takes parts itself too.
Whole steps of 784-50-50-10 at batch 100 (znver5, 2 threads, gathered, interleaved against
Numba's pool): 1.03x, 1.13x in a slow phase of the host; the study recipe's training loop
1.05-1.14x (parts.POOL_FLOPS: where it pays; docs/performance.md, session 33).

    with threads(n, like, fns) as (words, floats):   # n waiting threads (n = 0: none)
        step.train_step(..., words, floats, fns)     # its tasks through `parallel` below

Parts are claimed, not assigned: a task of nb parts is posted as one word (its number and
nb), and each thread takes first the part of its own number (the caller 0, the others 1, 2,
...), then any other part still free, each part's claim a compare-and-swap of its word to the
task's number; the caller then waits for all nb to end.  So no thread waits for another to
start: one that starts late, or never, leaves its parts to the others, and a part's bits are
its own whoever computes it (gemm.products' parts), so results do not depend on the threads
or on which of them ran what.  Own parts first, so that each thread takes the same part of
every task while none is late: a task's part often reads what the same part of the task
before wrote (the rows of a layer's output a forward's part wrote) from its own core's cache.
A waiting thread spins with `pause` for SPINS tries, then yields its core at each try: where
threads outnumber cores (8 threads on 2 cores in the tests) the one with the work runs.
"""
import platform
import sys
import threading
from contextlib import contextmanager

import numpy as np
from llvmlite import ir
from numba import carray, from_dtype, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import internal_kernel, serial_kernel
from .gemm import PRODUCTS, _run, part_runner, products
from .native import call
from .parts import kept_threads

# the words (int64): POSTED and DONE on 64-byte lines of their own, the task's arguments after,
# then a word per part: the number of the last task that claimed it
POSTED, DONE, GEN, TASK, KIND, FAILED = 0, 8, 16, 17, 18, 19
ARRAYS = 20         # Y, X, WT, dY, dWT, src: address, rows, columns each
VECTORS = 38        # mW, vW (in the dtype), hp (float64), idx (int64): address, length each
PARTS = 48
IDLE = (np.empty(0, np.int64), np.empty(2))    # (words, floats) without threads
CLOSED = -1         # POSTED when the run ends: the threads return
# tries of `pause` (~22 ns each on znver5) before a waiting thread yields its core at each try:
# ~45 us, the study step's stretch of serial work between its two tasks
SPINS = 2000
_X86 = platform.machine().lower() in ("x86_64", "amd64", "i686", "x86")
_POSIX = sys.platform != "win32"


def _at(context, builder, arrty, arr, i):
    data = cgutils.create_struct_proxy(arrty)(context, builder, value=arr).data
    return builder.gep(data, [i])


@intrinsic
def _load(typingctx, a, i):
    """a[i], an acquire load: what its writer stored before releasing it is seen after."""
    def codegen(context, builder, sig, args):
        return builder.load_atomic(_at(context, builder, sig.args[0], *args), "acquire", 8)
    return types.int64(a, i), codegen


@intrinsic
def _store(typingctx, a, i, v):
    """a[i] <- v, a release store: every store before it is seen by who loads v."""
    def codegen(context, builder, sig, args):
        builder.store_atomic(args[2], _at(context, builder, sig.args[0], args[0], args[1]),
                             "release", 8)
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def _swap(typingctx, a, i, old, new):
    """a[i] <- new if a[i] is old, atomically; whether it was."""
    def codegen(context, builder, sig, args):
        p = _at(context, builder, sig.args[0], args[0], args[1])
        pair = builder.cmpxchg(p, args[2], args[3], "acq_rel", "acquire")
        return builder.extract_value(pair, 1)
    return types.boolean(a, i, old, new), codegen


@intrinsic
def _add(typingctx, a, i, v):
    """a[i] += v, atomically (releasing the stores before it)."""
    def codegen(context, builder, sig, args):
        p = _at(context, builder, sig.args[0], args[0], args[1])
        builder.atomic_rmw("add", p, args[2], "acq_rel")
        return context.get_dummy_value()
    return types.none(a, i, v), codegen


@intrinsic
def _wait(typingctx, tries):
    """One try of a wait: x86's `pause` for the first SPINS tries, then the core yielded
    (sched_yield) where there is one."""
    def codegen(context, builder, sig, args):
        void = ir.FunctionType(ir.VoidType(), [])
        spin = builder.icmp_signed("<", args[0], ir.Constant(args[0].type, SPINS))
        with builder.if_else(spin) as (then, otherwise):
            with then:
                if _X86:
                    builder.call(cgutils.get_or_insert_function(builder.module, void,
                                                                "llvm.x86.sse2.pause"), [])
            with otherwise:
                if _POSIX:
                    fn = cgutils.get_or_insert_function(
                        builder.module, ir.FunctionType(ir.IntType(32), []), "sched_yield")
                    builder.call(fn, [])
        return context.get_dummy_value()
    return types.none(tries), codegen


@intrinsic
def _pointer(typingctx, address, like):
    """The int64 `address` as a pointer to like's dtype (for carray)."""
    ptr = types.CPointer(like.dtype)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(ptr))
    return ptr(address, like), codegen


@internal_kernel
def _put(words, at, a):
    words[at] = a.ctypes.data
    words[at + 1] = a.shape[0]
    if a.ndim == 2:
        words[at + 2] = a.shape[1]


@internal_kernel
def _table(words, at, like):
    return carray(_pointer(words[at], like), (words[at + 1], words[at + 2]))


@internal_kernel
def _vector(words, at, like):
    return carray(_pointer(words[at], like), words[at + 1])


@internal_kernel
def parallel(words, floats, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src, idx,
             fns):
    """gemm.products(task, ..., nb, ...) on the threads of `words` (threads()), or, with none
    (words empty), through products itself."""
    if nb == 1 or nb > words.shape[0] - PARTS:     # (no threads: words empty)
        call(products, fns[PRODUCTS], task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
             src, idx, fns)
        return
    # the arguments, then DONE cleared, then the task posted: a release, so a thread that
    # claims a part sees them (and no part of the task before is left to add to DONE)
    words[TASK], words[KIND] = task, kind
    for i, a in enumerate((Y, X, WT, dY, dWT, src)):
        _put(words, ARRAYS + 3 * i, a)
    _put(words, VECTORS, mW)
    _put(words, VECTORS + 2, vW)
    _put(words, VECTORS + 4, hp)
    _put(words, VECTORS + 6, idx)
    floats[0], floats[1] = lam, eta
    words[DONE] = 0
    gen = words[GEN] + 1    # the task's number (2^47 of them: no wrap)
    words[GEN] = gen
    _store(words, POSTED, (gen << 16) | nb)
    _take(words, floats, 0, gen, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src,
          idx, fns)
    tries = 0
    while _load(words, DONE) < nb:
        _wait(tries)
        tries += 1
    if words[FAILED] > 0:   # raised here, where train_step can pass it on to Python
        raise MemoryError("a part of the training step failed on one of the threads kept for "
                          "the run: its only allocations are the products' scratch blocks, so "
                          "memory ran out; free memory, or train on fewer threads")


@internal_kernel
def _claim(words, t, gen):
    """Whether this thread takes part t of task gen: no other did (its word is older; a word
    of a newer task means gen has ended, and a thread late on it takes nothing)."""
    last = _load(words, PARTS + t)
    return last < gen and _swap(words, PARTS + t, last, gen)


@internal_kernel
def _take(words, floats, me, gen, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src,
          idx, fns):
    """Thread me's parts of task gen: its own (part me), then every other still free; none
    where it has no part of its own (their owners are on time, or the caller takes them)."""
    if me >= nb:
        return
    run = part_runner(task, fns)
    for i in range(nb):
        t = (me + i) % nb
        if not _claim(words, t, gen):
            continue
        # a part that raises still counts as ended (FAILED says so), so that the caller never
        # waits for it, nor leaves while other threads still read the task's arrays
        try:
            call(_run, run, t, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src,
                 idx, fns)
        except Exception:
            _add(words, FAILED, 1)
        _add(words, DONE, 1)


@serial_kernel
def work(words, floats, me, like, fns):
    """Thread me's loop: its parts of each task posted in `words` until they are CLOSED."""
    seen = 0
    tries = 0
    while True:
        posted = _load(words, POSTED)
        if posted == CLOSED:
            return
        gen = posted >> 16
        if gen == seen:
            _wait(tries)
            tries += 1
            continue
        seen, tries = gen, 0
        # (a thread late for task gen may read words the caller is rewriting for a newer one;
        # it then claims nothing, every part's word being gen or newer, so nothing read is used)
        _take(words, floats, me, gen, words[TASK], _table(words, ARRAYS, like),
              _table(words, ARRAYS + 3, like), _table(words, ARRAYS + 6, like),
              _table(words, ARRAYS + 9, like), _table(words, ARRAYS + 12, like), floats[0],
              floats[1], _vector(words, VECTORS, like), _vector(words, VECTORS + 2, like),
              words[KIND], _vector(words, VECTORS + 4, floats), posted & 0xFFFF,
              _table(words, ARRAYS + 15, like), _vector(words, VECTORS + 6, words), fns)


def signatures(dtype):
    """(dispatcher, argument types) of what a run of steps in `dtype` compiles beyond the step:
    the threads' loop and parts.kept_threads (for a first run's second process, gemm.py's
    native_products)."""
    i = types.int64

    def vector(d, dims=1):
        return types.Array(from_dtype(np.dtype(d)), dims, "C")
    return [(work, (vector(np.int64), vector(np.float64), i, vector(dtype), vector(np.int64))),
            (kept_threads, (vector(np.int64, 2), i, i))]


@contextmanager
def threads(n, like, fns):
    """(words, floats) for train_step, with n threads taking parts of its tasks beside the
    caller (like: an array of the step's dtype), which then cut into at most n + 1 parts;
    n = 0: IDLE, the step's tasks on Numba's pool as before."""
    if n <= 0:
        yield IDLE
        return
    words, floats = np.zeros(PARTS + n + 1, np.int64), np.zeros(2)
    pool = [threading.Thread(target=work, args=(words, floats, me, like[:0], fns), daemon=True)
            for me in range(1, n + 1)]
    try:
        for t in pool:      # (one that fails to start leaves its parts to the others)
            t.start()
        yield words, floats
    finally:    # whatever the step did: the threads return
        words[POSTED] = CLOSED
        for t in pool:
            if t.ident is not None:
                t.join()
