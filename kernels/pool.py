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

A run of steps on gathered batches (rows of a training set larger than the caches) also
gathers each next batch ahead, into a second buffer: once a step's first layer has its forward,
the caller posts that gather (`ahead`) in a second slot of the words, the threads take its parts
one at a time whenever no task of the step waits, and the caller takes what is left when the
next step needs its batch (`ahead_ended`).  A copy, so the bits are the same whoever makes it.
Whole steps, against gathering with the first product (znver5, 2 threads, interleaved):
784-50-50-10 at 100 1.06-1.07x, 3072-50-50-10 at 100 1.05-1.06x, the 9-layer study net at 100
1.14x, 784-512-256-10 at 32 and 100 1.01x; a batch past AHEAD_BYTES is gathered as before.
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

from ._config import inlined_kernel, internal_kernel, serial_kernel
from .gemm import GATHER, PRODUCTS, _run, part_runner, products
from .native import call
from .parts import PART_GATHER, kept_threads, parts

# the words (int64) hold two slots of the same layout: the step's tasks in the first, the next
# batch's gather (`ahead`) in the second, at words[AHEAD].  In a slot, POSTED and DONE are on
# 64-byte lines of their own, the task's arguments after, then a word per part: the number of
# the last task that claimed it.  SLOT_PARTS (on POSTED's line of the first slot, written
# before the threads start) is how many parts a slot holds: the threads and the caller.
POSTED, SLOT_PARTS, AHEAD, DONE, GEN, TASK, KIND, FAILED = 0, 1, 2, 8, 16, 17, 18, 19
ARRAYS = 20         # Y, X, WT, dY, dWT, src: address, rows, columns each
VECTORS = 38        # mW, vW (in the dtype), hp (float64), idx (int64): address, length each
PARTS = 48
AHEAD_PARTS = 64    # parts of a gather ahead at most (its slot's part words)
IDLE = (np.empty(0, np.int64), np.empty(4))    # (words, floats) without threads
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
    if nb == 1 or words.shape[0] == 0 or nb > words[SLOT_PARTS]:
        call(products, fns[PRODUCTS], task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
             src, idx, fns)
        return
    gen = _post(words, floats, 0, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
                src, idx)
    _take(words, floats, 0, 0, gen, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
          src, idx, nb, fns)
    _ended(words, 0, nb)


@internal_kernel
def _floats_at(at):
    """Where the floats (lam, eta) of the slot at words[at] start: the step's tasks' at 0, the
    gather ahead's at 2."""
    return 0 if at == 0 else 2


@inlined_kernel
def _post(words, floats, at, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src,
          idx):
    """Post a task of nb parts in the slot at words[at]; returns its number."""
    # the arguments, then DONE cleared, then the task posted: a release, so a thread that
    # claims a part sees them (and no part of the task before is left to add to DONE)
    words[at + TASK], words[at + KIND] = task, kind
    for i, a in enumerate((Y, X, WT, dY, dWT, src)):
        _put(words, at + ARRAYS + 3 * i, a)
    _put(words, at + VECTORS, mW)
    _put(words, at + VECTORS + 2, vW)
    _put(words, at + VECTORS + 4, hp)
    _put(words, at + VECTORS + 6, idx)
    f = _floats_at(at)
    floats[f], floats[f + 1] = lam, eta
    words[at + DONE] = 0
    gen = words[at + GEN] + 1    # the task's number (2^47 of them: no wrap)
    words[at + GEN] = gen
    _store(words, at + POSTED, (gen << 16) | nb)
    return gen


@inlined_kernel
def _ended(words, at, nb):
    """Wait for the nb parts of the task in the slot at words[at] to end."""
    tries = 0
    while _load(words, at + DONE) < nb:
        _wait(tries)
        tries += 1
    if words[at + FAILED] > 0:   # raised here, where train_step can pass it on to Python
        raise MemoryError("a part of the training step failed on one of the threads kept for "
                          "the run: its only allocations are the products' scratch blocks, so "
                          "memory ran out; free memory, or train on fewer threads")


@internal_kernel
def ahead(words, floats, X, src, rows, hp, fns):
    """Post the gather X <- src[rows] (the next step's batch, in ahead_parts) to the threads
    kept, which take it while the step's serial work leaves them waiting (train_step: between
    the first layer's forward and its weights' step, the study net's ~45 us); the caller takes
    none of its parts here (ahead_ended takes what is left).  Why: the gather reads its rows
    from memory (a training set larger than the caches): with the product, as GATHER_FORWARD
    does it, 784-50-50-10's first forward took ~47-53 us, on a batch in cache ~34-38 us."""
    nb = ahead_parts(X)
    none, none1 = X[:0], np.empty(0, X.dtype)
    _post(words, floats, words[AHEAD], GATHER + 0 * nb, none, X, none, none, none, 0.0, 0.0,
          none1, none1, 0 * nb, hp, nb, src, rows)


# the largest batch gathered ahead: past ~1.5 MB the gather outlasts the step's serial work
# and the rest of it, taken when the batch is needed, is no longer hidden behind the first
# product (whole steps, znver5 (1 MB of L2 a core), 2 threads, against gathering with the
# product: 784-50-50-10 at 100 (0.3 MB) 1.07x, 3072-50-50-10 at 100 (1.2 MB) 1.06x, 784-50-
# 50-10 at 500 (1.6 MB) 1.03x, 784-512-256-10 at 500 1.00x; 3072-50-50-10 at 200 (2.5 MB)
# 0.99x, at 300 0.93x, at 500 0.84x, 784-50-50-10 at 1000 (3.1 MB) 0.89x)
AHEAD_BYTES = 3 << 19


def gathers_ahead(X):
    """Whether a run of steps with threads kept gathers each next batch (X's shape) ahead."""
    return X.nbytes <= AHEAD_BYTES


@internal_kernel
def ahead_parts(X):
    """The parts of `ahead`'s gather into X: one per PART_GATHER values (~10 us of reading from
    memory; up to AHEAD_PARTS), taken one at a time by the threads kept and what is left by the
    caller, when it needs the batch."""
    return parts(X.shape[0] * X.shape[1], np.int64(PART_GATHER), np.int64(AHEAD_PARTS))


@internal_kernel
def ahead_ended(words, floats, X, src, rows, hp, fns):
    """Wait for the gather `ahead` posted (its ahead_parts), taking every part still free."""
    at = words[AHEAD]
    nb = ahead_parts(X)
    none, none1 = X[:0], np.empty(0, X.dtype)
    _take(words, floats, at, 0, words[at + GEN], GATHER + 0 * nb, none, X, none, none, none,
          0.0, 0.0, none1, none1, 0 * nb, hp, nb, src, rows, nb, fns)
    _ended(words, at, nb)


@internal_kernel
def _claim(words, at, t, gen):
    """Whether this thread takes part t of task gen of the slot at words[at]: no other did (its
    word is older; a word of a newer task means gen has ended, and a thread late on it takes
    nothing)."""
    last = _load(words, at + PARTS + t)
    return last < gen and _swap(words, at + PARTS + t, last, gen)


@internal_kernel
def _take(words, floats, at, me, gen, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb,
          src, idx, most, fns):
    """Thread me's parts of task gen of the slot at words[at], up to `most`: its own (part me),
    then others still free; none where it has no part of its own (their owners are on time, or
    the caller takes them).  Returns how many it took."""
    took = 0
    if me >= nb:
        return took
    run = part_runner(task, fns)
    for i in range(nb):
        if took == most:
            break
        t = (me + i) % nb
        if not _claim(words, at, t, gen):
            continue
        # a part that raises still counts as ended (FAILED says so), so that the caller never
        # waits for it, nor leaves while other threads still read the task's arrays
        try:
            call(_run, run, t, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src,
                 idx, fns)
        except Exception:
            _add(words, at + FAILED, 1)
        _add(words, at + DONE, 1)
        took += 1
    return took


@internal_kernel
def _take_posted(words, floats, at, me, posted, most, like, fns):
    """_take on the task `posted` in the slot at words[at], its arguments read from the slot."""
    # (a thread late for task gen may read words the caller is rewriting for a newer one;
    # it then claims nothing, every part's word being gen or newer, so nothing read is used)
    f = _floats_at(at)
    return _take(words, floats, at, me, posted >> 16, words[at + TASK],
                 _table(words, at + ARRAYS, like), _table(words, at + ARRAYS + 3, like),
                 _table(words, at + ARRAYS + 6, like), _table(words, at + ARRAYS + 9, like),
                 _table(words, at + ARRAYS + 12, like), floats[f], floats[f + 1],
                 _vector(words, at + VECTORS, like), _vector(words, at + VECTORS + 2, like),
                 words[at + KIND], _vector(words, at + VECTORS + 4, floats), posted & 0xFFFF,
                 _table(words, at + ARRAYS + 15, like), _vector(words, at + VECTORS + 6, words),
                 most, fns)


@serial_kernel
def work(words, floats, me, like, fns):
    """Thread me's loop: its parts of each task posted in `words` until they are CLOSED; the
    step's tasks first, a gather posted `ahead` when none is waiting (its part me - 1 first:
    the caller takes none of it)."""
    seen = 0
    seen_ahead = 0
    tries = 0
    ahead_at = words[AHEAD]
    while True:
        posted = _load(words, POSTED)
        if posted == CLOSED:
            return
        at, mine, most = 0, me, posted & 0xFFFF
        if posted >> 16 == seen:
            # a part at a time, the step's tasks looked for between them: a step's task waits
            # for one part of the gather at most (~10 us), not the whole (3072-50-50-10's
            # batch, 1.2 MB from memory: ~80 us, longer than the serial work it hides behind)
            at, mine, most = ahead_at, me - 1, 1
            posted = _load(words, at + POSTED)
            if posted >> 16 == seen_ahead:
                _wait(tries)
                tries += 1
                continue
        tries = 0
        # (one call of _take_posted for both slots: each call site is compiled again, ~0.8 s)
        took = _take_posted(words, floats, at, mine, posted, most, like, fns)
        if at == 0:
            seen = posted >> 16
        elif took == 0:
            seen_ahead = posted >> 16


def signatures(dtype):
    """(dispatcher, argument types) of what a run of steps in `dtype` compiles beyond the step:
    the threads' loop and parts.kept_threads (for a first run's second process, gemm.py's
    native_products)."""
    i = types.int64

    def vector(d, dims=1):
        return types.Array(from_dtype(np.dtype(d)), dims, "C")
    return [(work, (vector(np.int64), vector(np.float64), i, vector(dtype), vector(np.int64))),
            (kept_threads, (vector(np.int64, 2), i, i))]


def shared(n):
    """(words, floats) for n threads beside the caller, no task posted yet."""
    slot = (PARTS + max(n + 1, AHEAD_PARTS) + 7) // 8 * 8     # (whole 64-byte lines)
    words = np.zeros(2 * slot, np.int64)
    words[SLOT_PARTS], words[AHEAD] = n + 1, slot
    return words, np.zeros(4)


@contextmanager
def threads(n, like, fns):
    """(words, floats) for train_step, with n threads taking parts of its tasks beside the
    caller (like: an array of the step's dtype), which then cut into at most n + 1 parts;
    n = 0: IDLE, the step's tasks on Numba's pool as before."""
    if n <= 0:
        yield IDLE
        return
    words, floats = shared(n)
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
