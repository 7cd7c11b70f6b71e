"""Numba kernels of fastmlp, installed as ``fastmlp.kernels``.

Kernels see only arrays and scalars, trust their inputs (the public layer in ``fastmlp``
validates), allocate nothing in their loops, and write every output element from exactly one
thread in a fixed order, so results do not depend on the number of threads.
"""
import hashlib
import os
from pathlib import Path


def _drop_stale_cache():
    """Numba's on-disk cache checks only the file a function is written in, so the fused step
    (step.py) would keep calling an old copy of a kernel from another file after that file
    changed.  The cache files here are therefore kept only while every kernel source, and
    the compile flags in _config.py, are what they were when the cache was written."""
    here = Path(__file__).resolve().parent
    cache = here / "__pycache__"
    # FASTMLP_VECTOR_BYTES (kernels/simd.py) changes the machine code without changing a file
    forced = os.environ.get("FASTMLP_VECTOR_BYTES", "").encode()
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(here.glob("*.py"))) + forced).hexdigest()
    stamp = cache / "kernels-sources.sha256"
    try:
        if stamp.is_file() and stamp.read_text() == digest:
            return
        for old in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            old.unlink()
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest)
    except OSError:     # a read-only install: Numba caches elsewhere or not at all
        pass


_drop_stale_cache()
