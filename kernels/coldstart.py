"""A first run on two or more cores: the kernels called through their addresses
(kernels/native.py) compiled in a second process while this one compiles their caller.

Why: gemm's products are compiled apart from step.train_step, which calls them through the
addresses it is given at run time, so the two compiles share nothing but Numba's disk cache.
With that cache empty, a child process compiles the callees into it while this process
compiles train_step; this process then loads them from the cache.  A process, not a thread:
Numba's compiler lock lets one thread of a process compile at a time.
With one core, with Numba's cache off or unwritable, or when anything here fails, this
process compiles what it lacks itself, as without the child: the child only saves time, and
what this process runs is always what it compiled or loaded itself, and the child compiles only
from the sources this process imported (it refuses to start otherwise, kernels/__init__.py).
A child that fails (with its last line of errors) or is stuck is reported in a RuntimeWarning:
the first run then takes the one-process time, and a child that always fails would otherwise
cost every first run a process silently.
One limit: Numba's index of a kernel's cached signatures is not written atomically across
processes, so a kernel both processes compiled would be saved by both at once.  None is: a
kernel both callers need (optim.update_range, called by _run and by train_step) is called
through its address and compiled by one process (checked from Numba's compile events: only
Numba's own helpers, such as np.empty's, are compiled in both); a change must keep it so.
"""
import multiprocessing
import os
import subprocess
import sys
import tempfile
import warnings

import numba
from numba.core.compiler_lock import global_compiler_lock

from . import EXPECT_SOURCES, SOURCES

CHILD_SECONDS = 300     # a child compiles for 10-20 s on 2 cores: far longer means it is stuck


def cores():
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:      # not on Linux
        return os.cpu_count() or 1


def _interpreter():
    """Whether sys.executable starts a Python to run `-c code`: not in a frozen application
    (PyInstaller and the like: the executable is the application) or a server embedding Python
    (uWSGI)."""
    name = os.path.basename(sys.executable or "").lower()
    return not getattr(sys, "frozen", False) and name.startswith("python")


def _cached(dispatcher, argtypes):
    """Whether Numba's disk cache holds `dispatcher` compiled for `argtypes` (loaded to see: a
    few milliseconds; Numba has no public test for it)."""
    return dispatcher._cache.load_overload(argtypes, dispatcher.targetctx) is not None


def compile_beside(caller, args, callees, child_code, after=()):
    """Before the first caller(*args) of a process: when any of `callees` ((dispatcher,
    argtypes) pairs) is not in the disk cache and two cores are free, run `child_code` (Python
    that compiles them) in a new interpreter while compiling `caller` for the types of `args`
    here, then `after` (pairs like callees'); return when both processes are done.  Otherwise
    do nothing."""
    if cores() < 2 or not _interpreter() or multiprocessing.parent_process() is not None:
        return      # (a worker of a pool: its siblings compile on the other cores already)
    # the compiler lock held throughout: loading from the cache uses LLVM, which Numba never
    # lets two threads use at once; and this thread is compiling throughout, waiting included
    # (progress.CompileClock counts it so)
    with global_compiler_lock:
        try:
            if all(_cached(f, argtypes) for f, argtypes in callees):
                return
        except Exception:   # Numba's cache internals changed: all compiled here, in turn
            return
        # the child imports this process's copy of fastmlp: its sys.path first
        code = f"import sys; sys.path[:0] = {sys.path!r}\n{child_code}"
        # the child compiles only from the sources this process imported (kernels/__init__.py);
        # in a session of its own, so that Ctrl-C reaches this process alone (the trainer
        # stops at its next step; a child killed by it would leave its share to compile here)
        env = dict(os.environ, **{EXPECT_SOURCES: SOURCES})
        # its errors to a file (a pipe nobody reads until it ends could fill and stall it)
        with tempfile.TemporaryFile() as err:
            try:
                child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=err, env=env,
                                         start_new_session=True)
            except OSError:     # no interpreter to start (an embedded Python): all compiled here
                return
            stuck = False
            try:
                caller.compile(tuple(numba.typeof(a) for a in args))
                for f, argtypes in after:
                    f.compile(argtypes)
                child.wait(timeout=CHILD_SECONDS)
            except subprocess.TimeoutExpired:   # stuck: what it has not cached is compiled here
                stuck = True
            finally:
                if child.poll() is None:    # stuck, interrupted (Ctrl-C) or failed here
                    child.kill()
                    child.wait()
                elif child.returncode != 0:
                    _warn(f"failed (exit code {child.returncode}: {_last_line(err)})")
            if stuck:
                _warn(f"did not finish in {CHILD_SECONDS} s")


def _last_line(f):
    """The last line the child wrote to its error file f."""
    f.seek(0)
    lines = f.read().decode(errors="replace").strip().splitlines()
    return lines[-1] if lines else "no message"


def _warn(what):
    """Say that the child's share was compiled here, and why: it costs a first run seconds."""
    warnings.warn(f"fastmlp: the second process that compiles the products on a first run {what}; "
                  "this process compiled them itself instead, which takes longer", RuntimeWarning,
                  stacklevel=3)
