"""bench/grid.py's cells for every optimiser rule (bench/rules.py): each implementation's first
two steps give fastmlp's two losses (the second follows from the first update, so a peer
computing another rule is refused), and the cell's runs time nothing else.  Peers that are not
installed are left out, as the grid leaves them out."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import grid
import impls
import rules


@pytest.mark.parametrize("rule", rules.RULES)
def test_a_cell_runs_the_same_rule_in_every_implementation(rule):
    peers = ["numpy"] + [p for p, ok in (("jax", impls.jax_available()),
                                         ("torch", impls.torch_available())) if ok]
    runs, flops, refused = grid.build("64-40-20-10", 16, peers, 1, rule=rule)
    assert set(runs) == {"fastmlp", "blas", *peers} and not refused
    assert flops == 2 * 16 * (64 * 40 * 2 + 40 * 20 * 3 + 20 * 10 * 3)
    assert all(np.isfinite(step()) for step, _ in runs.values())


def test_a_peer_with_another_rule_is_refused(monkeypatch):
    """The check that guards the table: NumPy taking SGD's step where fastmlp takes Adam's."""
    make = impls.make_numpy
    monkeypatch.setattr(impls, "make_numpy", lambda *a, rule, **k: make(*a, rule="sgd", **k))
    with pytest.raises(SystemExit, match="first two losses"):
        grid.build("64-40-20-10", 16, ["numpy"], 1, rule="adam")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs CPU affinity and two CPUs to hold a process to one")
def test_the_comparisons_hold_the_process_to_their_threads():
    """recipe_jax.limit_threads (the grid's and the recipes' first call): XLA ignores its thread
    flags and sizes its pool from the CPU affinity, so the process is pinned to `threads` CPUs;
    with as many threads as CPUs it keeps them all.  In a child: affinity is the process's."""
    cpus = len(os.sched_getaffinity(0))
    code = ("import os, sys; sys.path.insert(0, {!r}); import recipe_jax; "
            "recipe_jax.limit_threads({}); print(len(os.sched_getaffinity(0)))")
    here = str(Path(__file__).resolve().parent)
    for threads, held in ((1, 1), (cpus, cpus)):
        out = subprocess.run([sys.executable, "-c", code.format(here, threads)],
                             capture_output=True, text=True, check=True).stdout
        assert int(out) == held
