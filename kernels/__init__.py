"""Numba kernels of fastmlp, installed as ``fastmlp.kernels``.

Kernels see only arrays and scalars, trust their inputs (the public layer in ``fastmlp``
validates), allocate nothing in their loops, and write every output element from exactly one
thread in a fixed order, so results do not depend on the number of threads.
"""
import hashlib
import os
from pathlib import Path


def _cache_dirs(here):
    """The directories where Numba keeps this directory's cache files, in the order its own
    locators (numba.core.caching) try them: NUMBA_CACHE_DIR alone when it is set, else
    __pycache__ beside the sources, else (not writable) the user-wide cache; outside the
    package, in the sub-directory Numba names after this directory."""
    from numba.core import caching, config
    from numba.misc.appdirs import AppDirs
    sub = caching._CacheLocator.get_suitable_cache_subpath(str(here / "step.py"))
    if config.CACHE_DIR:
        return [Path(config.CACHE_DIR) / sub]
    return [here / "__pycache__", Path(AppDirs(appname="numba", appauthor=False).user_cache_dir) / sub]


def _drop_stale_cache():
    """Numba's on-disk cache checks only the file a function is written in, so the fused step
    (step.py) would keep calling an old copy of a kernel from another file after that file
    changed.  The cache files here are therefore kept only while every kernel source, and
    the compile flags in _config.py, are what they were when the cache was written."""
    here = Path(__file__).resolve().parent
    # FASTMLP_VECTOR_BYTES (kernels/simd.py) changes the machine code without changing a file
    forced = os.environ.get("FASTMLP_VECTOR_BYTES", "").encode()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py"))) + forced).hexdigest()
    for cache in _cache_dirs(here):
        stamp = cache / "kernels-sources.sha256"
        try:
            if stamp.is_file() and stamp.read_text() == digest:
                return
            for old in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
                old.unlink()
            cache.mkdir(parents=True, exist_ok=True)
            stamp.write_text(digest)    # the directory Numba will use: stamped before it writes
            return
        except OSError:     # not writable: Numba tries the next one too
            continue


_drop_stale_cache()
