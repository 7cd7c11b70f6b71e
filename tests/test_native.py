"""kernels/native.py: a compiled function called through its address, as step.train_step calls
gemm.products and products calls gemm._run."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numba import njit, types
from numba.core.errors import TypingError

import fastmlp
from fastmlp.kernels import gemm
from fastmlp.kernels.native import address, call, callable_at

F32 = types.Array(types.float32, 1, "C")


@njit(no_cpython_wrapper=True, no_cfunc_wrapper=True)
def _axpy(y, x, a):
    if a != a:
        raise ValueError("a is NaN")
    for i in range(y.shape[0]):
        y[i] += a * x[i]


callable_at(_axpy, [(F32, F32, types.float64)])


@njit
def _twice(at, y, x, a):
    call(_axpy, at, y, x, a)
    call(_axpy, at, y, x, a)


@njit
def _wrong_types(at, y, a):
    call(_axpy, at, y, y[:2], np.float32(a))


def test_a_call_through_the_address_runs_the_callee():
    y, x = np.ones(5, np.float32), np.arange(5, dtype=np.float32)
    _twice(address(_axpy, (F32, F32, types.float64)), y, x, 0.5)
    np.testing.assert_array_equal(y, 1 + np.arange(5, dtype=np.float32))


def test_an_exception_in_the_callee_reaches_the_caller():
    y = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="a is NaN"):
        _twice(address(_axpy, (F32, F32, types.float64)), y, y.copy(), float("nan"))


def test_arguments_of_other_types_are_a_compile_error_not_a_call():
    with pytest.raises(TypingError, match="not one of its declared argument types"):
        _wrong_types(address(_axpy, (F32, F32, types.float64)), np.ones(3, np.float32), 1.0)


def test_an_address_is_only_given_for_declared_types():
    with pytest.raises(TypeError, match="not declared callable"):
        address(_axpy, (F32, F32, types.float32))


def test_each_dtype_has_its_own_products_and_packs():
    """Every callee of the table (gemm.CALLEES: products, _run, the packs, the fused backward,
    the streamed and small kernels, update_range, the softmax's rows, batch norm's parts):
    one build of each per
    dtype, and a tag per dtype."""
    fns32, fns64 = gemm.native_products(np.float32), gemm.native_products(np.float64)
    assert fns32.dtype == np.int64 and fns32.shape == (1 + len(gemm.CALLEES),)
    assert len({*fns32[gemm.PRODUCTS:], *fns64[gemm.PRODUCTS:]}) == 2 * len(gemm.CALLEES) == 24
    assert fns32[gemm.TAG] != fns64[gemm.TAG]
    assert (gemm.native_products(np.dtype(np.float32)) == fns32).all()


def test_each_index_of_the_table_is_its_callees_address():
    """fns[i] is the address of CALLEES[i - 1], and each name the kernels index the table with
    points at the callee it is named after: a wrong index calls another function with the
    caller's arguments, a crash rather than an error (call checks only the declared types)."""
    from fastmlp.kernels import (gemm_back, gemm_dot, gemm_small, gemm_thin, optim, pack, pool,
                                 softmax_xent, step)
    named = {"PRODUCTS": gemm.products, "RUN": gemm._run, "PACK_A": pack.pack_a,
             "PACK_B": pack.pack_b, "BACK": gemm_back.dgrad_weights, "SMALL": gemm_small.small,
             "THIN": gemm_thin.thin, "DOTS": gemm_dot.forward_dots,
             "ROWS": gemm_thin.forward_rows, "UPDATE_RANGE": optim.update_range,
             "SOFTMAX_ROWS": softmax_xent.softmax_xent_rows,
             "BN_RUN": gemm._bn_run}
    assert gemm.TAG == 0 and len(named) == len(gemm.CALLEES)
    for name, callee in named.items():
        assert gemm.CALLEES[getattr(gemm, name) - 1] is callee, name
    for module, names in ((step, ("TAG", "UPDATE_RANGE")), (pool, ("PRODUCTS",))):
        for name in names:          # the copies of the names in the step and in pool.py
            assert getattr(module, name) == getattr(gemm, name), name
    for dtype in gemm.DTYPES:
        fns, sigs = gemm.native_products(dtype), gemm._signatures(dtype)
        for i, callee in enumerate(gemm.CALLEES, start=1):
            assert fns[i] == address(callee, sigs[callee])


@pytest.mark.parametrize("stale", ["tag", "dtype"])
def test_a_step_refuses_addresses_it_was_not_compiled_for(monkeypatch, stale):
    """A train_step loaded from Numba's disk cache after the declared signatures changed (its
    file unchanged, so Numba keeps it), or handed the other dtype's products, raises instead
    of calling through the wrong layout."""
    net = fastmlp.Network([6, 5, 3], dtype=np.float64, seed=0)
    X, y = np.ones((4, 6)), np.arange(4) % 3
    native = gemm.native_products

    def wrong(dtype, *caller):
        if stale == "dtype":
            return native(np.float32)
        fns = native(dtype).copy()
        fns[gemm.TAG] += 1
        return fns

    monkeypatch.setattr(gemm, "native_products", wrong)
    with pytest.raises(RuntimeError, match="do not match this version"):
        net._train_step(X, y, 0.0, 0.1)


def test_stale_cache_files_are_dropped_in_numba_cache_dir_too(monkeypatch, tmp_path):
    # a NUMBA_CACHE_DIR keeps the fused step's cached copy of other files' kernels as well
    import fastmlp.kernels as kernels
    from numba.core import config
    monkeypatch.setattr(config, "CACHE_DIR", str(tmp_path))
    here = Path(os.path.abspath(kernels.__file__)).parent
    cache = kernels._cache_dirs(here)[0]
    assert cache.parent == tmp_path
    kernels._drop_stale_cache()
    stamp = (cache / "kernels-sources.sha256").read_text()
    cached = cache / "step.train_step-135.py311.1.nbc"
    cached.write_bytes(b"old")
    kernels._drop_stale_cache()
    assert cached.exists()                     # the sources are what the stamp says: kept
    (cache / "kernels-sources.sha256").write_text("an older source tree")
    kernels._drop_stale_cache()
    assert not cached.exists() and (cache / "kernels-sources.sha256").read_text() == stamp


def test_the_cache_directory_checked_is_the_one_numba_uses(tmp_path):
    # Numba names it from the path Python imported the kernels by (symlinks kept)
    code = ("from pathlib import Path; import os; import fastmlp.kernels as k; "
            "from fastmlp.kernels import step; "
            "here = Path(os.path.abspath(k.__file__)).parent; "
            "assert k._cache_dirs(here)[0] == Path(step.train_step.stats.cache_path), "
            "(k._cache_dirs(here), step.train_step.stats.cache_path); "
            "assert (k._cache_dirs(here)[0] / 'kernels-sources.sha256').read_text() == k.SOURCES")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path)}, timeout=300)
    assert done.returncode == 0, done.stderr


def test_a_child_started_after_the_sources_changed_refuses_to_import(tmp_path):
    import fastmlp.kernels as kernels
    done = subprocess.run([sys.executable, "-c", "import fastmlp.kernels"], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "NUMBA_CACHE_DIR": str(tmp_path),
                                                       kernels.EXPECT_SOURCES: "0" * 64})
    assert done.returncode != 0 and "sources changed" in done.stderr
    assert not list(tmp_path.rglob("*.sha256"))     # and left the cache alone
