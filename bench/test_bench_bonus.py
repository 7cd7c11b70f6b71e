"""The bonus toolbox inside the fast path: training steps of net A (3072-50-50-10, BN, batch 100,
float32) through the Trainer, plain and with dropout 0.1 + flip + translate=2 augmentation, and
with each optimiser.  The issue's bar: with dropout and flip+translate on, at least 80 % of the
plain speed (compare the medians of `plain` and `dropout+flip+translate`).

    python -m pytest bench -k bonus --benchmark-group-by=group
    python bench/bonus.py           # the same cases interleaved, medians and ratios
"""
import pytest

import impls

CASES = {
    "plain": {},
    "dropout": {"dropout": 0.1},
    "flip+translate": {"augment": "flip,translate=2"},
    "dropout+flip+translate": {"dropout": 0.1, "augment": "flip,translate=2"},
    "momentum": {"optimizer": "momentum"},
    "adagrad": {"optimizer": "adagrad"},
    "adam": {"optimizer": "adam"},
}


@pytest.fixture(scope="module")
def data():
    return impls.bonus_data()


@pytest.mark.parametrize("case", list(CASES))
def test_bonus_steps(benchmark, data, case):
    run = impls.bonus_steps(data, **CASES[case])
    loss = run()                                    # compiles, and checks that it trains
    assert 0 < loss < 3.0, (case, loss)
    benchmark.extra_info.update(case=case, steps=impls.BONUS_STEPS)
    benchmark.group = "bonus: net A, 50 training steps of batch 100"
    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
