"""bench/profile_step.py: perf's map names each compiled function at the address its code
starts, fastmlp's kernels loaded from Numba's cache among them, and the profile runs end to
end where `perf` is installed and allowed."""
import shutil
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import profile_step


@numba.njit
def _twice(x):
    return 2 * x


def _entries(path):
    rows = [line.split(" ", 2) for line in Path(path).read_text().splitlines()]
    return {name: (int(start, 16), int(size, 16)) for start, size, name in rows}


def test_the_map_names_a_function_where_its_code_starts(tmp_path):
    _twice(np.float64(1.0))
    cres = _twice.overloads[_twice.signatures[0]]
    start = cres.library.get_pointer_to_function(cres.fndesc.llvm_func_name)
    assert profile_step.perf_map(tmp_path / "map") == len(_entries(tmp_path / "map"))
    entries = _entries(tmp_path / "map")
    assert entries[cres.fndesc.llvm_func_name][0] == start
    assert "test_bench_profile._twice" in {profile_step.short_name(n) for n in entries}
    spans = sorted(entries.values())
    assert all(a + n <= b for (a, n), (b, _) in zip(spans, spans[1:])), "entries overlap"


def test_the_map_names_the_steps_kernels_loaded_from_the_cache(tmp_path):
    profile_step.trainer([20, 8, 3], 4, 50)(0.0)
    profile_step.perf_map(tmp_path / "map")
    names = {profile_step.short_name(n) for n in _entries(tmp_path / "map")}
    assert {"fastmlp.kernels.step.train_step", "fastmlp.kernels.gemm._run"} <= names


def test_short_names():
    assert profile_step.short_name("_ZN7fastmlp7kernels4gemm4_runB2v1B122c8tJTIeFI") == \
        "fastmlp.kernels.gemm._run"
    assert profile_step.short_name("gc_collect_main") == "gc_collect_main"


@pytest.mark.skipif(shutil.which("perf") is None, reason="perf is not installed")
def test_the_profile_runs_and_names_the_kernels():
    done = subprocess.run([sys.executable, str(Path(profile_step.__file__)), "--sizes",
                           "64-32-10", "--batch", "16", "--rows", "200", "--seconds", "1",
                           "--top", "40"], capture_output=True, text=True)
    if done.returncode != 0 and "perf record failed" in done.stderr:
        pytest.skip(f"perf may not record here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert "ms a step" in done.stdout and "fastmlp.kernels." in done.stdout, done.stdout
