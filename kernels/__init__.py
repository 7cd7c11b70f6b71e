"""Numba kernels of fastmlp, installed as ``fastmlp.kernels``.

Kernels see only arrays and scalars, trust their inputs (the public layer in ``fastmlp``
validates), allocate nothing in their loops, and write every output element from exactly one
thread in a fixed order, so results do not depend on the number of threads.
"""
import hashlib
import os
import tempfile
from pathlib import Path

# Set by kernels/coldstart.py for the process it starts: the sources its parent was started
# with, so that a child started after they changed refuses to compile (and to touch the cache)
EXPECT_SOURCES = "FASTMLP_KERNELS_SOURCES"


def _cache_dirs(here):
    """The directories where Numba may keep this directory's cache files, in the order its own
    locators (numba.core.caching) try them, the first writable one winning: NUMBA_CACHE_DIR
    when it is set, __pycache__ beside the sources, the user-wide cache; outside the package,
    in the sub-directory Numba names after this directory (from the path as Python imported
    it, symlinks unresolved, as Numba does)."""
    dirs = [here / "__pycache__"]
    try:
        from numba.core import caching, config
        from numba.misc.appdirs import AppDirs
        sub = caching._CacheLocator.get_suitable_cache_subpath(str(here / "step.py"))
        user = Path(AppDirs(appname="numba", appauthor=False).user_cache_dir) / sub
        return ([Path(config.CACHE_DIR) / sub] if config.CACHE_DIR else []) + dirs + [user]
    except Exception:   # Numba's locators changed: the package's own directory at least
        return dirs


def _writable(cache):
    """Numba's own test of a cache directory (_CacheLocator.ensure_cache_path)."""
    cache.mkdir(parents=True, exist_ok=True)
    tempfile.TemporaryFile(dir=cache).close()


def _drop_stale_cache():
    """Numba's on-disk cache checks only the file a function is written in, so the fused step
    (step.py) would keep calling an old copy of a kernel from another file after that file
    changed.  The cache files here are therefore kept only while every kernel source, and
    the compile flags in _config.py, are what they were when the cache was written."""
    here = Path(os.path.abspath(__file__)).parent
    # FASTMLP_VECTOR_BYTES (kernels/simd.py) changes the machine code without changing a file
    forced = os.environ.get("FASTMLP_VECTOR_BYTES", "").encode()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py"))) + forced).hexdigest()
    if os.environ.get(EXPECT_SOURCES, digest) != digest:
        raise ImportError("fastmlp's kernel sources changed after the process that started this "
                          "one imported them")
    for cache in _cache_dirs(here):
        stamp = cache / "kernels-sources.sha256"
        try:
            _writable(cache)    # else Numba passes it over too
            if stamp.is_file() and stamp.read_text() == digest:
                return digest
            for old in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                old.unlink()
            stamp.write_text(digest)    # the directory Numba will use: stamped before it writes
            return digest
        except OSError:
            continue
    return digest


SOURCES = _drop_stale_cache()
