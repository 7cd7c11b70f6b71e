"""`fastmlp search` strategies: listed values and a full grid, a constant eta and dropout searched,
more than two narrowing stages and a user-given fine interval, Optuna's TPE (seeded, resumable, on
a shared journal file), the figure, and their bad input.  Tiny runs on a tiny npz."""
import json
import sys

import numpy as np
import pytest

from fastmlp.config import TrainConfig
from fastmlp.studies.search import SearchPlan, around, coarse_random, coarse_size, grid
from test_cli import run
from test_studies_search import TINY, cli, table_rows
from train_helpers import write_npz
from conftest import plain_run_figures, pool_in_threads


@pytest.fixture(scope="module", autouse=True)
def cheap_runs():
    """Trials in threads of this process, each run's figures a stub PNG (conftest.py says why)."""
    with plain_run_figures(), pool_in_threads():
        yield


@pytest.fixture(scope="module")
def npz(tmp_path_factory):
    return write_npz(tmp_path_factory.mktemp("strategies") / "blobs.npz")


def records_of(out):
    return json.loads((out / "results.json").read_text())


# ---- points ------------------------------------------------------------------------------------
def test_grid_is_every_combination_of_the_lists_once():
    plan = SearchPlan(sampler="grid", lams="0.01,0.02,0.03", eta_maxes="0.05,0.1",
                      dropouts=[0, 0.2]).validate()
    points = grid(plan, TrainConfig())
    combos = {(p["lam"], p["eta_max"], p["dropout"]) for p in points}
    assert len(points) == len(combos) == 12 and plan.grid_size() == 12 and plan.fine == 0
    assert combos == {(lam, eta, d) for lam in (0.01, 0.02, 0.03) for eta in (0.05, 0.1) for d in (0.0, 0.2)}
    assert {p["sizes"] for p in points} == {TrainConfig().sizes}
    no_list = grid(SearchPlan(sampler="grid", coarse=4, l_min=-4, l_max=-1).validate(), TrainConfig())
    assert [p["lam"] for p in no_list] == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1])


def test_random_draws_from_the_lists_and_a_constant_eta_range():
    base = TrainConfig(schedule="constant", epochs=1)
    plan = SearchPlan(lams="0.001,0.1", eta_range=(-3, -1), dropouts="0,0.5").validate()
    points = coarse_random(plan, base, 200)
    assert {p["lam"] for p in points} == {0.001, 0.1} and {p["dropout"] for p in points} == {0.0, 0.5}
    etas = np.log10([p["eta"] for p in points])
    assert etas.min() >= -3 and etas.max() <= -1 and {p["eta_max"] for p in points} == {base.eta_max}
    assert plan.searched() == ["lam", "eta", "dropout"] and coarse_random(plan, base, 200) == points


def test_random_over_lists_only_runs_each_combination_once():
    # `--lams 0.01,0.02,0.03` ran 8 trials drawn with replacement from the three (five of them 0.01)
    base = TrainConfig()
    plan = SearchPlan(lams="0.01,0.02,0.03").validate()
    assert [p["lam"] for p in coarse_random(plan, base, plan.coarse)] == [0.01, 0.02, 0.03]
    assert coarse_size(plan, base) == 3
    many = SearchPlan(lams="0.01,0.02,0.03", dropouts="0,0.1,0.2,0.3", coarse=5).validate()
    points = coarse_random(many, base, many.coarse)
    combos = [(p["lam"], p["dropout"]) for p in points]
    assert len(set(combos)) == len(combos) == 5 == coarse_size(many, base) and combos == sorted(combos)
    assert coarse_random(many, base, many.coarse) == points


def test_each_fine_stage_narrows_around_its_centre_and_the_first_can_take_a_given_interval():
    base = TrainConfig(eta_min=1e-4)
    plan = SearchPlan(eta_max_range=(-3, -1), width=1.0, shrink=0.25, stages=4).validate()
    centre = {"lam": 1e-3, "eta_max": 1e-2, "sizes": "auto-9-auto", "dropout": 0.0, "eta": 0.01}
    for stage, half in ((1, 1.0), (2, 0.25), (3, 0.0625)):
        points = around(plan, base, stage, 300, centre)
        lams, etas = np.log10([p["lam"] for p in points]), np.log10([p["eta_max"] for p in points])
        assert np.abs(lams + 3).max() <= half and np.abs(lams + 3).max() > 0.9 * half
        assert np.abs(etas + 2).max() <= half and {p["sizes"] for p in points} == {"auto-9-auto"}
    given = SearchPlan(eta_max_range=(-3, -1), fine_l_range=(-6, -5), fine_eta_range=(-1.5, -1.2)).validate()
    points = around(given, base, 1, 100, centre)
    assert all(1e-6 <= p["lam"] <= 1e-5 and 10 ** -1.5 <= p["eta_max"] <= 10 ** -1.2 for p in points)
    later = around(given, base, 2, 100, centre)     # stage 2 is around the centre again
    assert all(abs(np.log10(p["lam"]) + 3) <= 0.25 for p in later)


# ---- whole searches ----------------------------------------------------------------------------
def test_a_grid_of_lam_and_constant_eta_with_dropout_trains_each_point_once(npz, tmp_path):
    argv = ["search", "--dataset", npz, "--out", tmp_path / "g", "--sampler", "grid", "--lams", "0.001,0.1",
            "--schedule", "constant", "--epochs", 1, "--etas", "0.01,0.05", "--dropouts", "0,0.3", *TINY[:2],
            *TINY[6:]]
    code, stdout, err = cli(argv)
    assert code == 0, err
    records = records_of(tmp_path / "g")
    assert len(records) == 8 and {r["phase"] for r in records} == {"coarse"}
    assert {(r["lam"], r["eta"], r["dropout"]) for r in records} == \
        {(lam, eta, d) for lam in (0.001, 0.1) for eta in (0.01, 0.05) for d in (0.0, 0.3)}
    for r in records:
        config = json.loads((tmp_path / "g" / "runs" / r["runs"][0]["out"].split("/runs/")[1] /
                             "metrics.json").read_text())["config"]
        assert (config["schedule"], config["eta"], config["lam"], config["dropout"]) == \
            ("constant", r["eta"], r["lam"], r["dropout"])
    rows = table_rows(stdout)
    assert rows[0][:7] == ["rank", "trial", "phase", "layers", "lam", "eta", "dropout"]
    assert {r[3] for r in rows[2:]} == {"2"}
    assert "coarse phase only" in stdout and (tmp_path / "g" / "val_vs_lam.png").read_bytes()[:4] == b"\x89PNG"


def test_three_stages_each_refine_the_best_trial_of_the_stages_before(npz, tmp_path):
    argv = ["search", "--dataset", npz, "--out", tmp_path / "s", "--coarse", 3, "--fine", 2, "--stages", 3,
            "--width", 1, "--shrink", 0.5, "--l-min", -4, "--l-max", -1, *TINY]
    code, stdout, err = cli(argv)
    assert code == 0, err
    records = records_of(tmp_path / "s")
    by_phase = {p: [r for r in records if r["phase"] == p] for p in ("coarse", "fine", "fine2")}
    assert [len(v) for v in by_phase.values()] == [3, 2, 2] and len(records) == 7
    centre = max(by_phase["coarse"] + by_phase["fine"], key=lambda r: r["val_accuracy"])
    assert all(abs(np.log10(r["lam"] / centre["lam"])) <= 0.5 for r in by_phase["fine2"])
    assert "after the fine phases" in stdout
    code, again, err = cli(argv)          # a restart draws the same stages and reruns nothing
    assert code == 0 and again == stdout and "[" not in err


# ---- Optuna's TPE -------------------------------------------------------------------------------
TPE = ["--sampler", "tpe", "--coarse", 3, "--fine", 3, "--l-min", -5, "--l-max", -1,
       "--sizes-choices", "auto-8-auto,auto-6-6-auto", "--workers", 1, *TINY[2:]]
SCORES = ("key", "phase", "lam", "eta_max", "sizes", "val_accuracy")


def _scores(out):
    return sorted(tuple(r[k] for k in SCORES) for r in records_of(out))


def _trials(out):
    import optuna
    from fastmlp.studies.search_tpe import STUDY, storage
    return optuna.load_study(study_name=STUDY, storage=storage(out)).get_trials()


def test_tpe_is_seeded_resumable_and_its_study_is_in_the_journal(npz, tmp_path):
    pytest.importorskip("optuna", reason="Optuna is not installed: pip install \"fastmlp[optuna]\"")
    argv = ["search", "--dataset", npz, "--out", tmp_path / "a", *TPE]
    code, stdout, err = cli(argv)
    assert code == 0, err
    records = records_of(tmp_path / "a")
    assert sorted(r["key"] for r in records) == ["coarse-0", "coarse-1", "coarse-2", "tpe-0", "tpe-1", "tpe-2"]
    trials = _trials(tmp_path / "a")
    assert len(trials) == 6 and sorted(t.user_attrs["slot"] for t in trials) == list(range(6))
    assert {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.value for t in trials) == sorted(r["val_accuracy"] for r in records)
    assert "TPE search (Optuna)" in (tmp_path / "a" / "results.md").read_text()
    code, again, err = cli(["search", "--dataset", npz, "--out", tmp_path / "b", *TPE])
    assert code == 0 and _scores(tmp_path / "b") == _scores(tmp_path / "a")       # seeded
    # lose a record: its slot takes up its finished Optuna trial (no new one) and reuses its runs
    lines = (tmp_path / "a" / "trials.jsonl").read_text().splitlines()
    lost = json.loads(lines[-1])
    (tmp_path / "a" / "trials.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    code, third, err = cli(argv)
    assert code == 0 and third == stdout and len(_trials(tmp_path / "a")) == 6, err
    assert [line.split("]")[0] for line in err.splitlines() if line.startswith("[")] == \
        [f"[{lost['phase']} {3}/{3}"]


def test_tpe_takes_up_the_trial_a_killed_search_had_asked_for(npz, tmp_path):
    optuna = pytest.importorskip("optuna", reason="Optuna is not installed: pip install \"fastmlp[optuna]\"")
    from fastmlp.studies.search_tpe import STUDY, distributions, storage
    out = tmp_path / "k"
    out.mkdir()
    plan = SearchPlan(sampler="tpe", l_min=-5, l_max=-1, sizes_choices="auto-8-auto,auto-6-6-auto").validate()
    study = optuna.create_study(study_name=STUDY, storage=storage(out), direction="maximize")
    trial = study.ask(distributions(plan))       # what slot 1 asked before the search was killed
    trial.set_user_attr("slot", 1)
    code, _, err = cli(["search", "--dataset", npz, "--out", out, *TPE])
    assert code == 0, err
    one = next(r for r in records_of(out) if r["key"] == "coarse-1")
    assert (one["lam"], one["sizes"]) == (trial.params["lam"], trial.params["sizes"])
    assert len(_trials(out)) == 6 and _trials(out)[trial.number].state.name == "COMPLETE"


def test_tpe_without_optuna_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "optuna", None)
    code, _, err = run(["search", "--dataset", "sample", "--out", tmp_path / "t", "--sampler", "tpe"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and 'pip install "fastmlp[optuna]"' in err, err
    assert not (tmp_path / "t").exists()          # refused before the search folder is made


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--lams", "0.01,x"], "lams must be distinct numbers in (0, 1000]"),
    (["--lams", "0.01,0.01"], "lams must be distinct numbers"),
    (["--dropouts", "0,1"], "dropouts must be distinct numbers in [0, 1)"),
    (["--sampler", "grid", "--eta-max-range", -2, -1], "a grid takes listed values, not the range eta_max_range"),
    (["--sampler", "tpe", "--stages", 3], "stages sets the fine stages of a random or grid search"),
    (["--etas", "0.01,0.1"], "etas searches the constant schedule's eta, but schedule is 'cyclic'"),
    (["--eta-maxes", "0.05", "--etas", "0.1"], "eta_maxes and etas both search the learning rate"),
    (["--schedule", "constant", "--eta", 0.1, "--etas", "0.01,0.1"], "--eta fixes eta for every trial"),
    (["--eta-maxes", "1e-6,0.1"], "every value of eta_maxes must be >= eta_min"),
    (["--sizes", "auto-auto", "--dropouts", "0,0.2"], "dropouts 0.2 with sizes auto-auto"),
    (["--stages", 0], "stages must be an integer >= 1; got 0"),
    (["--shrink", 1.5], "shrink must be in (0, 1]"),
    (["--fine-l-range", -2, -3], "fine_l_range must be LO <= HI <= 3"),
])
def test_strategy_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    code, stdout, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", *argv], capsys)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "s").exists()
