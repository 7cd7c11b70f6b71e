"""One training step of nets A, B and C (bench/impls.py) at batch 100 and 500, float32:
fastmlp's fused step, its per-kernel path, a textbook NumPy step and PyTorch eager.

Every case first checks that the implementation computes the same first-step loss as
fastmlp from the same weights, then warms up (JIT compilation is never timed).

    python -m pytest bench -k step --benchmark-group-by=param:net,param:batch
"""
import pytest

import impls
from fastmlp.threads import blas_single_threaded

IMPLS = ["fastmlp", "fastmlp-unfused", "numpy", "torch"]


def build(impl, net_name, n):
    X, y = impls.batch(n)
    step, net = impls.make_fastmlp(net_name, X, y)
    reference = net.copy()
    if impl == "fastmlp":
        return step, net, reference, X, y
    if impl == "fastmlp-unfused":
        return impls.make_fastmlp(net_name, X, y, fused=False)[0], net, reference, X, y
    if impl == "numpy":
        return impls.make_numpy(net_name, X, y, like=net)[0], net, reference, X, y
    if not impls.torch_available():
        pytest.skip("PyTorch is not installed (pip install torch==2.13.0)")
    return impls.make_torch(net_name, X, y, like=net)[0], net, reference, X, y


@pytest.mark.parametrize("batch", [100, 500])
@pytest.mark.parametrize("net", sorted(impls.NETS))
@pytest.mark.parametrize("impl", IMPLS)
def test_step(benchmark, impl, net, batch):
    step, _, reference, X, y = build(impl, net, batch)
    fused = impl.startswith("fastmlp")
    with blas_single_threaded() if fused else _nothing():
        expected = reference.loss(X, y, train=True)
        first = step()
        assert first == pytest.approx(expected, rel=2e-4), (impl, first, expected)
        for _ in range(5):
            step()
        benchmark.extra_info.update(net=net, batch=batch, impl=impl)
        benchmark(step)


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
