"""Start-up of `fastmlp train`: the first run on a fresh machine compiles every kernel; later
runs load them from Numba's on-disk cache.  Each case runs the command in a subprocess with
its own empty NUMBA_CACHE_DIR, once cold and once warm, and reports the seconds from launching
the process to the end of its first training step (`first_step_unix` in metrics.json), compilation included.

    python -m pytest bench -k startup -s
"""
import json
import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.slow
COMMAND = [sys.executable, "-m", "fastmlp", "train", "--dataset", "sample", "--ns", "20",
           "--cycles", "1"]


def launch(out, cache):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache))
    start = time.time()
    subprocess.run(COMMAND + ["--out", str(out)], env=env, check=True, capture_output=True)
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics["first_step_unix"] - start, time.time() - start


def test_startup_cold_then_warm(tmp_path, benchmark):
    cache = tmp_path / "numba-cache"
    cold_start, cold_total = launch(tmp_path / "cold", cache)
    warm_start, warm_total = launch(tmp_path / "warm", cache)
    assert any(cache.rglob("*.nbc")), "nothing was cached"
    benchmark.extra_info.update(cold_seconds_to_first_step=cold_start,
                                warm_seconds_to_first_step=warm_start,
                                compile_seconds=cold_start - warm_start,
                                cold_total=cold_total, warm_total=warm_total)
    print(f"\nseconds to the first training step: cold {cold_start:.2f} (compiling "
          f"{cold_start - warm_start:.2f}), warm {warm_start:.2f}; whole command cold "
          f"{cold_total:.2f}, warm {warm_total:.2f}")
    runs = iter(range(10**6))
    benchmark.pedantic(lambda: launch(tmp_path / f"w{next(runs)}", cache), rounds=3, iterations=1)
