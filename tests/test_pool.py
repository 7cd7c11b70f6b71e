"""The threads a run of training steps keeps between its tasks (kernels/pool.py): the same bits
as the tasks on Numba's pool, whoever takes which part, and no thread left behind."""
import threading
from contextlib import contextmanager

import numba
import numpy as np
import pytest

import fastmlp
from fastmlp.kernels import pool, step

# nets whose every kind of task cuts into parts on 2 threads while a run keeps its threads
# (parts.kept_threads): the first's products; the second's batch norm and softmax (512 x 512
# values, 512 x 100 scores); the third's bias, ReLU and dropout without batch norm
NETS = [([784, 50, 50, 10], 100, True, 0.0), ([16, 512, 100], 512, True, 0.0),
        ([16, 512, 100], 512, False, 0.2)]
THREADS = pool.threads


def _gathered_run(sizes, N, etas, batch_norm=True, drop=0.0, rule="sgd", dtype=np.float32):
    """(theta, stats, losses, steps taken, the batch left in the workspace, the rows of the last
    step taken) of one call of len(etas) steps on gathered rows of a training set (pool.ahead
    gathers each next batch where the threads are kept)."""
    rng = np.random.default_rng(0)
    src = rng.standard_normal((4 * N, sizes[0])).astype(dtype)
    labels = rng.integers(0, sizes[-1], 4 * N)
    net = fastmlp.Network(sizes, batch_norm=batch_norm, dropout=drop, dtype=dtype, seed=0)
    opt = (fastmlp.optim.make("momentum", nesterov=True) if rule == "nesterov"
           else fastmlp.optim.make(rule)).bind(net.theta.size, net.dtype)
    rows = rng.integers(0, 4 * N, len(etas) * N)
    losses = np.full(len(etas), -1.0)
    done = net._train_steps(src, labels[rows], 0.001, np.asarray(etas, float), rows, opt, 0,
                            np.arange(1, len(etas) + 1, dtype=np.uint64), losses)
    last = rows[(done - 1) * N:done * N]
    return net.theta.copy(), net.stats.copy(), losses, done, net._train_ws.X.copy(), src[last]


def _run(sizes, N, batch_norm, drop, rule, dtype, steps=3):
    """theta, stats and the losses after `steps` steps in one call, on gathered rows."""
    theta, stats, losses, done, _, _ = _gathered_run(sizes, N, [0.01] * steps, batch_norm,
                                                     drop, rule, dtype)
    assert done == steps and np.isfinite(losses).all()
    return theta, stats, losses


@contextmanager
def _threads_as(monkeypatch, make):
    """pool.threads replaced by make(n, like, fns), recording the n each run asked for."""
    asked = []

    def threads(n, like, fns):
        asked.append(n)
        return make(n, like, fns)
    monkeypatch.setattr(pool, "threads", threads)
    yield asked
    monkeypatch.undo()


@pytest.fixture
def two_threads():
    before = numba.get_num_threads()
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    yield numba.get_num_threads()
    numba.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rule", ["sgd", "nesterov", "adam"])
@pytest.mark.parametrize("net", NETS, ids=["study", "batch-norm", "dropout"])
def test_a_run_with_its_threads_kept_gives_the_bits_of_numbas_pool(monkeypatch, two_threads,
                                                                   net, rule, dtype):
    if two_threads < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1)")
    with _threads_as(monkeypatch, THREADS) as asked:
        kept = _run(*net, rule, dtype)
    assert asked == [1]         # one thread kept beside the caller, for the run
    with _threads_as(monkeypatch, lambda n, like, fns: THREADS(0, like, fns)):
        woken = _run(*net, rule, dtype)
    numba.set_num_threads(1)
    alone = _run(*net, rule, dtype)
    for a, b, c in zip(kept, woken, alone):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.parametrize("net", NETS[:2], ids=["study", "batch-norm"])
def test_parts_whose_threads_never_start_are_taken_by_the_caller(monkeypatch, two_threads,
                                                                 net):
    """Parts are claimed, not assigned: with room for two parts and no thread to take the
    second, the caller takes both, and the run ends with the same bits."""
    if two_threads < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1)")

    @contextmanager
    def no_thread_starts(n, like, fns):
        words, floats = pool.shared(n)
        yield words, floats
        # tasks were posted, and all taken here, and so were the batches gathered ahead
        assert words[pool.GEN] > 0 and words[words[pool.AHEAD] + pool.GEN] > 0
    with _threads_as(monkeypatch, no_thread_starts) as asked:
        alone = _run(*net, "sgd", np.float32)
    assert asked == [1]
    np.testing.assert_array_equal(alone[0], _run(*net, "sgd", np.float32)[0])


def test_the_threads_return_when_the_run_raises():
    """Whatever ends the run, its threads return (they would spin forever otherwise)."""
    like = np.zeros(4, np.float32)
    fns = fastmlp.kernels.gemm.native_products(like.dtype)
    before = threading.active_count()
    with pytest.raises(KeyboardInterrupt):
        with pool.threads(3, like, fns) as (words, _):
            assert threading.active_count() == before + 3
            raise KeyboardInterrupt
    assert words[pool.POSTED] == pool.CLOSED and threading.active_count() == before
    with pool.threads(0, like, fns) as shared:
        assert shared is pool.IDLE and threading.active_count() == before


def test_a_run_keeps_a_thread_per_part_of_its_largest_task_and_none_for_long_steps():
    """parts.kept_threads: the study net's first layer takes 2 parts on 2 threads and 3 on 8
    (a part per 1M multiply-adds); 3072-1024-512-10 at batch 100 does ~550M multiply-adds a
    part a step, beyond POOL_FLOPS, and wakes Numba's pool for each task."""
    from fastmlp.kernels import parts
    study = fastmlp.Network([784, 50, 50, 10], batch_norm=True).layout
    wide = fastmlp.Network([3072, 1024, 512, 10], batch_norm=True).layout
    kept = parts.kept_threads
    assert [kept(study, 100, nt) for nt in (1, 2, 8)] == [0, 1, 2]
    assert kept(wide, 100, 2) == 0 and kept(wide, 100, 64) > 0


def _failing_part(t, task, Y, X, WT, dY, dWT, lam, eta, mW, vW, kind, hp, nb, src, idx, fns):
    """A part that writes its number into Y[t], and raises as an allocation that fails would
    where kind (a bit per part) says so."""
    if (kind >> t) & 1:
        raise MemoryError("no memory for this part")
    Y[t, 0] = t + 1


@pytest.mark.parametrize("failing", [0b10, 0b01, 0b11])
def test_a_part_that_raises_ends_the_task_and_raises_in_the_caller(failing):
    """Whichever part raises, on a kept thread (part 1) or on the caller (part 0), every other
    part still runs, the caller waits for all and raises, and the threads return: no wait for
    a part that never ends, no thread left reading the task's arrays."""
    from numba import njit
    from fastmlp.kernels import gemm, native
    like = np.zeros(4, np.float32)
    sig = gemm._signatures(like.dtype)[gemm._run]
    fail = fastmlp.kernels._config.internal_kernel(_failing_part)
    native.callable_at(fail, [sig])
    fns = gemm.native_products(like.dtype).copy()
    fns[gemm.RUN] = native.address(fail, sig)

    @njit
    def task(words, floats, Y, fns):
        e1, e2 = Y[0, :0], Y[:0]
        pool.parallel(words, floats, gemm.FORWARD, Y, e2, e2, e2, e2, 0.0, 0.0, e1, e1,
                      failing, np.zeros(8), 2, e2, np.zeros(0, np.int64), fns)
    before = threading.active_count()
    Y = np.zeros((2, 1), np.float32)
    with pytest.raises(MemoryError, match="free memory, or train on fewer threads"):
        with pool.threads(1, like, fns) as (words, floats):
            task(words, floats, Y, fns)
    assert threading.active_count() == before
    assert [Y[t, 0] for t in range(2)] == [0 if (failing >> t) & 1 else t + 1 for t in range(2)]


def _recording(monkeypatch):
    """pool.threads recording the words of each run (their slots' task counts after it)."""
    runs = []

    @contextmanager
    def recorded(n, like, fns):
        with THREADS(n, like, fns) as (words, floats):
            runs.append(words)
            yield words, floats
    return _threads_as(monkeypatch, recorded), runs


@pytest.mark.parametrize("sizes", [[784, 50, 50, 10], [3072, 50, 10]], ids=["2-parts", "9-parts"])
def test_batches_gathered_ahead_train_each_step_on_its_own_rows(monkeypatch, two_threads, sizes):
    """Each step but the first trains on the batch the threads gathered ahead during the step
    before (in 2 parts of 784-value rows; in 9 of 3072), with the bits of Numba's pool and of
    one thread, and the run leaves its last batch where a step that gathers it alone does."""
    if two_threads < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1)")
    etas = [0.01] * 5
    recording, runs = _recording(monkeypatch)
    with recording:
        theta, _, losses, done, X, last = _gathered_run(sizes, 100, etas)
    ahead = runs[0][runs[0][pool.AHEAD] + pool.GEN]
    assert done == 5 and ahead == 4       # a gather ahead for each step after the first
    np.testing.assert_array_equal(X, last)
    with _threads_as(monkeypatch, lambda n, like, fns: THREADS(0, like, fns)):
        woken = _gathered_run(sizes, 100, etas)
    numba.set_num_threads(1)
    alone = _gathered_run(sizes, 100, etas)
    for other in (woken, alone):
        np.testing.assert_array_equal(theta, other[0])
        np.testing.assert_array_equal(losses, other[2])


def test_a_run_that_diverges_with_a_batch_gathered_ahead_stops_where_it_would(monkeypatch,
                                                                            two_threads):
    """A step whose loss is not finite ends the run (the gather posted during it is waited
    for, not left to the threads), after the steps one thread takes, with its bits."""
    if two_threads < 2:
        pytest.skip("Numba has one thread here (NUMBA_NUM_THREADS=1)")
    etas = [0.01, 1e30, 0.01, 0.01, 0.01, 0.01]
    recording, runs = _recording(monkeypatch)
    before = threading.active_count()
    with recording:
        kept = _gathered_run([784, 50, 50, 10], 100, etas)
    assert threading.active_count() == before
    numba.set_num_threads(1)
    alone = _gathered_run([784, 50, 50, 10], 100, etas)
    assert kept[3] == alone[3] < len(etas) and not np.isfinite(kept[2][kept[3] - 1])
    assert runs[0][runs[0][pool.AHEAD] + pool.GEN] == kept[3]    # the last one waited for
    np.testing.assert_array_equal(kept[0], alone[0])
    np.testing.assert_array_equal(kept[2], alone[2])
