"""Where the runs of a search train: a pool of local worker processes, or a Dask cluster.

Either way each task trains one run with one Numba thread (two runs on two cores beat one run on
two threads at this size) and each worker process loads the data once.

Faults, and what happens:
- A local worker dies (kill -9, the OOM killer): ProcessPoolExecutor then fails every unfinished
  task with BrokenProcessPool.  The pool is replaced by a fresh one and those runs are submitted
  again, each resuming from its checkpoint; a run lost RETRIES + 1 times is reported as failed
  (None) instead, and the search keeps the others.  A Dask cluster reschedules a dead worker's
  task itself; a task it gives up on (KilledWorker) is reported as failed.
- The search process dies: each local worker watches its parent and exits with it, so no worker
  keeps training (and holding the terminal) for nobody.
"""
import concurrent.futures
import contextlib
import multiprocessing
import os
import socket
import threading
import time
from concurrent.futures.process import BrokenProcessPool

from . import repeats as rep
from .trials import run_or_reuse

DASK_CONNECT_TIMEOUT = 10.0   # seconds to reach the scheduler before giving up
RETRIES = 2                   # fresh pools a run gets after the one its worker died in
_worker_data = {}             # per worker process: the loaded splits, by what selects them
_one_run = threading.Lock()   # a Dask worker with several threads still trains one run at a time


@contextlib.contextmanager
def trial_executor(plan):
    """A LocalPool of plan.workers processes, or a DaskPool on plan.dask_scheduler's cluster."""
    executor = LocalPool(plan.workers or 2) if plan.dask_scheduler is None else DaskPool(plan.dask_scheduler)
    try:
        yield executor
    finally:
        executor.shutdown()


class LocalPool:
    """Spawned worker processes that exit with their parent; renew() replaces a broken pool."""
    died = (BrokenProcessPool,)

    def __init__(self, workers):
        self.workers = workers
        self.pool = self._new()

    def _new(self):
        return concurrent.futures.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=exit_with_parent)

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def renew(self):
        """A fresh pool, once every process of the old one has ended (and so let go of its run
        folder's lock); True: the lost runs can be tried again."""
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = self._new()
        return True

    def shutdown(self):
        self.pool.shutdown(wait=True)


class DaskPool:
    """The workers of a Dask cluster, as a concurrent.futures executor."""
    workers = 1                # a KilledWorker names its own task: no other task is charged

    def __init__(self, address):
        self.client = dask_client(address)
        from distributed import KilledWorker     # dask_client has checked that it is installed
        self.executor = self.client.get_executor(pure=False)
        self.died = (KilledWorker,)

    def submit(self, fn, *args):
        return self.executor.submit(fn, *args)

    def renew(self):
        return False           # the scheduler has already retried the task on other workers

    def shutdown(self):
        self.client.close()


def dask_client(address):
    """A dask.distributed Client of the scheduler at `address`, with errors that say what to do."""
    try:
        import distributed
    except ImportError:
        raise ValueError(f"dask_scheduler={address!r} needs dask.distributed, which is not installed; "
                         f"install it with pip install \"fastmlp[dask]\", or drop --dask-scheduler to use "
                         f"local worker processes.") from None
    try:
        return distributed.Client(address, timeout=DASK_CONNECT_TIMEOUT)
    except TypeError as e:      # tls:// without certificates: "TLS expects a `ssl_context` argument"
        raise ValueError(f"dask_scheduler={address!r}: a tls:// scheduler needs TLS certificates in Dask's "
                         f"configuration (distributed.comm.tls.ca-file, .client.cert and .client.key, e.g. "
                         f"DASK_DISTRIBUTED__COMM__TLS__CA_FILE=...); set them, or use a tcp:// address "
                         f"({e}).") from None
    except (OSError, TimeoutError, ValueError) as e:
        raise ValueError(f"dask_scheduler={address!r}: cannot reach a Dask scheduler there within "
                         f"{DASK_CONNECT_TIMEOUT:g} s ({type(e).__name__}: {e}); start one (dask scheduler, "
                         f"then dask worker ADDRESS --nthreads 1 on each machine) or check the address.") from None


def completed(executor, jobs, log, task=None):
    """Submit every (tag, config, merge_val) job; yield (tag, run record) as each one finishes, or
    (tag, None), with a warning, for a run whose worker died RETRIES + 1 times.  On an error or
    Ctrl-C the jobs not yet started are cancelled.  task: what a worker runs (train_one).

    When a worker dies, every unfinished job fails with it, but only those that were running can
    have killed it: the pool starts jobs in submission order, so those are the first `workers` of
    the lost ones.  They are charged and run again one at a time, where a death is surely the
    job's own; the others simply start again.  So a run that kills its worker every time ends up
    failed alone, and a single kill -9 costs nothing but the time to resume."""
    task = task or train_one
    charged = {tag: 0 for tag, _, _ in jobs}
    suspects, jobs = [], list(jobs)
    while suspects or jobs:
        if suspects:
            batch = [suspects.pop(0)]
        else:
            batch, jobs = jobs, []
        lost, error = yield from _run_batch(executor, batch, task)
        if not lost:
            continue
        retry = executor.renew()
        running = lost[:executor.workers]
        for job in running:
            charged[job[0]] += 1
            if retry and charged[job[0]] <= RETRIES:
                suspects.append(job)
            else:
                log(f"warning: the run in {job[1].out} failed: its worker process died {charged[job[0]]} "
                    f"time(s) ({type(error).__name__}); the search goes on without it. Rerun the same "
                    f"command to try it again.")
                yield job[0], None
        jobs = lost[len(running):] + jobs
        again = len(lost) - sum(charged[job[0]] > RETRIES or not retry for job in running)
        if again:
            log(f"warning: a worker process died ({type(error).__name__}); {again} unfinished run(s) "
                f"start again, resuming from their checkpoints.")


def _run_batch(executor, batch, task):
    """Yield (tag, run record) for each job of `batch` that finishes; return (the jobs lost to a
    dead worker, in submission order; the error that said so)."""
    futures = {executor.submit(task, config, merge_val): k for k, (tag, config, merge_val) in enumerate(batch)}
    lost, error = [], None
    try:
        for future in concurrent.futures.as_completed(futures):
            try:
                run = future.result()
            except executor.died as e:
                lost.append(futures[future])
                error = e
                continue
            yield batch[futures[future]][0], run
    finally:
        for future in futures:
            future.cancel()
    return [batch[k] for k in sorted(lost)], error


def train_one(config, merge_val=False):
    """In a worker: train one config with one Numba thread (reusing a finished run folder) and
    return its run record.  The data is loaded once per worker process."""
    import numba

    from ..run import load_data
    with _one_run:
        threads = numba.get_num_threads()
        numba.set_num_threads(1)
        try:
            tic = time.perf_counter()
            key = (config.dataset, config.data_dir, config.split, config.n_val, config.dtype, merge_val,
                   config.standardization())
            if key not in _worker_data:
                _worker_data[key] = load_data(config, merge_val)
            metrics, _, diverged = run_or_reuse(config, _worker_data[key])
            run = rep.run_record(config.seed, config.out, metrics, diverged, time.perf_counter() - tic)
        finally:
            numba.set_num_threads(threads)
    return {**run, "worker": f"{socket.gethostname()}:{os.getpid()}"}


def exit_with_parent():
    """In a spawned worker: end this process as soon as its parent has ended.  multiprocessing
    gives the child a sentinel, a pipe whose other end only the parent holds, so it becomes
    readable when the parent is gone, however it went (kill -9 too).  The kernels release the GIL,
    so the watching thread runs within a moment even while a run trains."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch():
        parent.join()
        os._exit(1)     # the run resumes from its checkpoint; its folder's lock goes with us

    threading.Thread(target=watch, name="fastmlp-exit-with-parent", daemon=True).start()
