import numpy as np
import pytest

from fastmlp.schedules import Constant, Cyclic, OneCycle

LO, HI = 1e-5, 1e-1


@pytest.mark.parametrize("t, expected", [
    (0, LO), (500, HI), (1000, LO),            # first cycle: bottom, top, bottom
    (1500, HI), (2000, LO),                    # second cycle
    (250, (LO + HI) / 2), (750, (LO + HI) / 2),
    (1, LO + (HI - LO) / 500), (999, LO + (HI - LO) / 500),
])
def test_cyclic_corners(t, expected):
    s = Cyclic(LO, HI, ns=500, cycles=2)
    assert s.eta(t) == pytest.approx(expected, rel=1e-12, abs=0)
    assert isinstance(s.eta(t), float)


def test_cyclic_matches_assignment_formula_everywhere():
    ns, cycles = 7, 3
    s = Cyclic(LO, HI, ns, cycles)
    assert s.total_steps == 2 * ns * cycles
    for t in range(s.total_steps + 1):
        ell = t // (2 * ns)
        if 2 * ell * ns <= t <= (2 * ell + 1) * ns:
            want = LO + (t - 2 * ell * ns) / ns * (HI - LO)
        else:
            want = HI - (t - (2 * ell + 1) * ns) / ns * (HI - LO)
        assert s.eta(t) == pytest.approx(want, rel=1e-12)


def test_cyclic_vectorised_equals_scalar():
    s = Cyclic(LO, HI, ns=2250, cycles=2)
    t = np.arange(s.total_steps)
    etas = s.eta(t)
    assert etas.shape == t.shape and etas.dtype == np.float64
    assert np.array_equal(etas[::97], [s.eta(int(k)) for k in t[::97]])
    assert etas.min() == LO and etas.max() == HI
    assert (np.diff(etas[:2251]) > 0).all() and (np.diff(etas[2250:4501]) < 0).all()


def test_equal_bounds_give_a_constant_rate():
    assert np.all(Cyclic(0.01, 0.01, 3).eta(np.arange(6)) == 0.01)


def test_constant():
    s = Constant(0.02, total_steps=10)
    assert s.eta(0) == 0.02 and s.total_steps == 10
    assert np.array_equal(s.eta(np.arange(10)), np.full(10, 0.02))


@pytest.mark.parametrize("make, pattern", [
    (lambda: Cyclic(0.2, 0.1, 10), r"eta_min and eta_max must satisfy 0 < eta_min <= eta_max < inf; "
                                    r"got eta_min=0.2, eta_max=0.1"),
    (lambda: Cyclic(0.0, 0.1, 10), r"got eta_min=0.0"),
    (lambda: Cyclic(LO, HI, 0), r"ns must be an integer >= 1; got 0"),
    (lambda: Cyclic(LO, HI, 2.5), r"ns must be an integer >= 1; got 2.5"),
    (lambda: Cyclic(LO, HI, 10, cycles=0), r"cycles must be an integer >= 1; got 0"),
    (lambda: Constant(-1.0, 10), r"eta must be a finite number > 0; got -1.0"),
    (lambda: Constant(0.1, 0), r"total_steps must be an integer >= 1; got 0"),
    (lambda: Cyclic(LO, HI, 10).eta(-1), r"t must be >= 0"),
    (lambda: Cyclic(LO, HI, 10).eta(1.5), r"t must be an integer step index"),
])
def test_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


@pytest.mark.parametrize("total, pct", [(12000, 0.3), (100, 0.3), (37, 0.25), (50, 0.5)])
def test_onecycle_is_pytorchs_onecyclelr_rate_and_momentum(total, pct):
    """eta(t) and momentum(t) are what torch's OneCycleLR gives its t-th optimizer.step()."""
    torch = pytest.importorskip("torch")
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.9, nesterov=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.3, total_steps=total, pct_start=pct,
                                                div_factor=20.0, final_div_factor=100.0)
    lr, mom = [], []
    for _ in range(total):
        lr.append(opt.param_groups[0]["lr"])
        mom.append(opt.param_groups[0]["momentum"])
        opt.step()
        sched.step()
    s = OneCycle(0.3, total, pct, 20.0, 100.0)
    t = np.arange(total)
    assert np.array_equal(s.eta(t), lr) and np.array_equal(s.momentum(t), mom)
    assert s.eta(0) == pytest.approx(0.3 / 20) and s.eta(total - 1) == pytest.approx(0.3 / 20 / 100)


def test_onecycle_corners_without_torch():
    s = OneCycle(0.1, 1000)                       # torch's defaults: pct 0.3, div 25, final 1e4
    assert s.eta(0) == pytest.approx(0.004) and s.eta(299) == pytest.approx(0.1)
    assert s.eta(999) == pytest.approx(0.004 / 1e4)
    assert s.momentum(0) == pytest.approx(0.95) and s.momentum(299) == pytest.approx(0.85)
    assert np.all(np.diff(s.eta(np.arange(300))) > 0) and np.all(np.diff(s.eta(np.arange(299, 1000))) < 0)


@pytest.mark.parametrize("make, pattern", [
    (lambda: OneCycle(0.1, 2), r"empty phase"),
    (lambda: OneCycle(0.1, 100, pct_start=1.0), r"pct_start must be in \(0, 1\); got 1.0"),
    (lambda: OneCycle(0.0, 100), r"eta_max must be a finite number > 0; got 0.0"),
    (lambda: OneCycle(0.1, 100, div_factor=0), r"div_factor must be a finite number > 0; got 0"),
])
def test_onecycle_bad_arguments(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()
