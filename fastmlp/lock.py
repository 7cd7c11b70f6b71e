"""A lock on a run, study or search folder, held for the whole life of the work done in it.

Two `fastmlp train --out R` started together would both train and both print "Wrote R/" while R
keeps one of the runs; two searches on one folder would train every trial twice.  So the work
holds an OS lock on OUT/.fastmlp.lock (`fcntl.flock`; `msvcrt.locking` on Windows), and a second
process is refused at once with a one-line FolderBusy error (a ValueError: exit status 2 in the
CLI) naming the folder and the holder's pid.  The kernel drops the lock when its process ends,
however it ends (kill -9 included), so a lock never outlives its owner; the pid written into
the file is only for that message, never trusted as the lock itself.

The lock is reentrant within one thread (a search holds its folder while a helper it calls takes
the same folder again); another thread of the same process is refused like another process.
"""
import contextlib
import errno
import json
import os
import socket
import sys
import threading
import time
import warnings
from pathlib import Path

LOCK_FILE = ".fastmlp.lock"
WINDOWS_BYTE = 1 << 20    # msvcrt locks bytes: lock one past the owner text, which stays readable

_held = {}                # resolved folder -> the id of the thread of this process that holds it
_held_guard = threading.Lock()


class FolderBusy(ValueError):
    """Another fastmlp process (or thread) is working in the folder."""


@contextlib.contextmanager
def hold(folder, what="fastmlp"):
    """Hold the lock on `folder` (made if missing) for the with-block; raise FolderBusy at once if
    someone else holds it.  what: the work, as the busy message shows it to the second process."""
    folder = Path(folder)
    key = os.path.realpath(folder)
    with _held_guard:
        owner = _held.get(key)
    if owner == threading.get_ident():      # this thread holds it already: the outer hold releases it
        yield folder
        return
    if owner is not None:
        raise FolderBusy(f"{folder} is in use by another thread of this process (pid {os.getpid()}); "
                         f"wait for it to finish or choose another out folder (--out).")
    made = _missing(folder)
    fd = _acquire(folder, what)
    with _held_guard:
        _held[key] = threading.get_ident()
    try:
        yield folder
    finally:
        with _held_guard:
            del _held[key]
        _release(fd, folder, made)


def _acquire(folder, what):
    """The open lock file's descriptor, locked; None where the file system cannot lock."""
    path = folder / LOCK_FILE
    for _ in range(100):   # each retry means the holder finished and removed the file meanwhile
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)    # not inherited by spawned processes
        except FileNotFoundError:        # the folder was removed by a finishing holder: make it again
            continue
        try:
            _lock(fd)
        except BlockingIOError:
            owner = _owner(fd)
            os.close(fd)
            raise FolderBusy(f"{folder} is in use by another fastmlp process ({owner}); wait for it to "
                             f"finish or choose another out folder (--out).") from None
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            warnings.warn(f"{folder}: this file system cannot lock files ({e.strerror}); fastmlp runs "
                          f"without the lock that refuses a second process on the same folder.",
                          stacklevel=4)
            return None
        # A holder removes the file just before it unlocks; if that happened between our open and
        # our lock, we locked a file that is no longer there: open the new one instead.
        if _same_file(fd, path):
            _write_owner(fd, what)
            return fd
        os.close(fd)
    raise FolderBusy(f"{folder}: cannot take its lock ({path} keeps changing); another fastmlp process is "
                     f"starting and finishing there over and over; wait for it, or choose another --out.")


def _missing(folder):
    """folder and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _release(fd, folder, made):
    if fd is None:
        return
    if sys.platform != "win32":     # removed while still locked: see _acquire for why that is safe
        with contextlib.suppress(OSError):
            os.unlink(folder / LOCK_FILE)
    os.close(fd)                   # unlocks
    for path in made:              # nothing was written there (the run failed early): leave no empty folders
        try:
            path.rmdir()
        except OSError:            # not empty: in use
            break


def _same_file(fd, path):
    if sys.platform == "win32":    # the file is never removed there
        return True
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def _write_owner(fd, what):
    owner = {"pid": os.getpid(), "host": socket.gethostname(), "what": what,
             "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, (json.dumps(owner) + "\n").encode())


def _owner(fd):
    """'pid 123: fastmlp train, since ...' from the holder's lock file, as far as it can be read."""
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        owner = json.loads(os.read(fd, 4096).decode())
        pid = int(owner["pid"])
        host = "" if owner.get("host") == socket.gethostname() else f" on {owner.get('host')}"
        return f"pid {pid}{host}: {' '.join(str(owner['what']).split())}, since {owner['since']}"
    except (OSError, ValueError, KeyError, TypeError):   # it has not written it yet
        return "pid unknown"


if sys.platform == "win32":
    import msvcrt

    def _lock(fd, wait=False):
        at = os.lseek(fd, 0, os.SEEK_CUR)     # msvcrt locks at the position: put it back after
        os.lseek(fd, WINDOWS_BYTE, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_LOCK if wait else msvcrt.LK_NBLCK, 1)
        except OSError as e:          # Windows says EACCES or EDEADLOCK where POSIX says EWOULDBLOCK
            raise BlockingIOError(errno.EWOULDBLOCK, str(e)) from None
        finally:
            os.lseek(fd, at, os.SEEK_SET)
else:
    import fcntl

    def _lock(fd, wait=False):
        fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)


# The same OS lock for the other files whose owner must be known alive or dead: atomic_write's
# temporary files (fastmlp/checkpoint.py) and a download's staging folder (fastmlp/data/download.py).
def lock_file(fd):
    """Take the exclusive lock of the open file `fd`, waiting while another holder has it.  The
    kernel drops it when this process ends, however it ends."""
    _lock(fd, wait=True)


def abandoned(fd):
    """Take the lock of the open file `fd` if nobody holds it and return True (its holder, if it
    had one, is dead), or return False at once when a live process holds it."""
    try:
        _lock(fd)
    except BlockingIOError:
        return False
    return True
