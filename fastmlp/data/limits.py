"""Sizes checked before anything is allocated.

A file's header says how big its data is: an .npy header its shape, an IDX header its dimensions. A
hostile or broken file can claim far more than it holds (numpy allocates the claimed shape before it
reads a byte) or hold far more than fits (a gzip bomb). So the loaders read the headers first, check
the claim against the bytes that are there and against the memory this process can still get, and
only then allocate; a stream is never decompressed past the size its header gave.
"""
import resource
import zipfile
from pathlib import Path

import numpy as np

from .errors import DataError


def memory_budget() -> int:
    """Bytes this process can still allocate: the least of the machine's available memory, the room
    left under its address-space limit (ulimit -v) and under its cgroup's memory.max."""
    room = [_meminfo("MemAvailable")]
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        room.append(soft - _status("VmSize"))
    room.extend(_cgroup_room())
    known = [r for r in room if r is not None]
    return max(0, min(known)) if known else 1 << 62


def check_fits(where, nbytes: int, what: str) -> None:
    """Refuse `nbytes` of data that cannot be held in memory, naming `where` and `what` claims it."""
    budget = memory_budget()
    if nbytes > budget:
        raise DataError(
            f"{where}: {what} is {_gb(nbytes)} but this process can allocate only {_gb(budget)} (available "
            "memory, ulimit -v and cgroup limit); the file is corrupt, or use a machine with more memory"
        )


def npz_arrays(path: Path, keys) -> None:
    """Check the .npy headers of the members `keys` of the .npz at `path` before numpy reads them:
    each must hold exactly the bytes its shape and dtype claim, and all of them must fit in memory."""
    total = 0
    try:
        with zipfile.ZipFile(path) as z:
            members = {info.filename: info for info in z.infolist()}
            for key in keys:
                info = members.get(f"{key}.npy")
                if info is None:
                    continue
                with z.open(info) as f:
                    shape, dtype, header = _npy_header(f)
                if dtype.hasobject:
                    continue    # np.load(allow_pickle=False) refuses it, with its own message
                claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if claimed != info.file_size - header:
                    raise DataError(
                        f"{path}: {key} claims shape {shape} of {dtype} ({claimed:,} bytes) in its header but "
                        f"holds {info.file_size - header:,} bytes; the file is corrupt, save it again with np.savez"
                    )
                total += claimed
    except DataError:
        raise
    except Exception as e:  # not a zip, a torn header, a bad dtype string...: numpy would fail the same way
        raise DataError(
            f"{path}: cannot read it as an .npz of plain arrays ({type(e).__name__}: {e}); save it with "
            "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
        ) from e
    check_fits(path, total, "the data its headers claim")


def _npy_header(f):
    """(shape, dtype, header length in bytes) of the .npy stream `f`, reading the header only."""
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, _, dtype = np.lib.format.read_array_header_2_0(f)
    else:
        raise ValueError(f"unknown .npy format version {version}")
    return tuple(int(s) for s in shape), np.dtype(dtype), f.tell()


def _gb(nbytes) -> str:
    return f"{nbytes / 1e9:.3g} GB"


def _meminfo(key):
    return _proc_kb("/proc/meminfo", key)


def _status(key):
    return _proc_kb("/proc/self/status", key) or 0


def _proc_kb(path, key):
    """A `key: N kB` line of a /proc file, in bytes; None where there is no such file (not Linux)."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_room():
    """memory.max - memory.current of this process's cgroup (v2) and of each cgroup above it."""
    try:
        with open("/proc/self/cgroup") as f:
            line = next((ln for ln in f if ln.startswith("0::")), None)
    except OSError:
        return []
    if line is None:
        return []
    room = []
    folder = Path("/sys/fs/cgroup") / line[3:].strip().lstrip("/")
    for d in (folder, *folder.parents):
        try:
            limit = (d / "memory.max").read_text().strip()
            if limit != "max":
                room.append(int(limit) - int((d / "memory.current").read_text()))
        except (OSError, ValueError):
            pass
        if d == Path("/sys/fs/cgroup"):
            break
    return room
