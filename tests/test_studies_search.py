"""`fastmlp search`: coarse then fine draws (lam, eta_max, architecture) in two worker processes, a
table sorted by (mean) validation accuracy, repeats, the final run of the winner, a restart that
reruns nothing, and bad input.  The Dask cluster path is in test_studies_dask.py."""
import contextlib
import io
import json
import shutil
import sys

import numpy as np
import pytest

from fastmlp.cli import main
from fastmlp.config import TrainConfig
from fastmlp.studies import executors
from fastmlp.studies import search as search_module
from fastmlp.studies.search import SearchPlan, draws, lam_values
from test_cli import run
from train_helpers import write_npz

TINY = ["--sizes", "auto-8-auto", "--ns", 6, "--cycles", 1, "--batch", 40, "--train-eval", 0, "--n-val", 80]


def test_lam_values_are_log_uniform_in_range_and_seeded():
    lams = lam_values(-4, -2, 200, 0)
    assert min(lams) >= 1e-4 and max(lams) <= 1e-2 and lams == lam_values(-4, -2, 200, 0)
    assert 0.4 < np.mean(np.log10(lams) < -3) < 0.6


def test_search_sorts_by_val_accuracy_and_resumes(tmp_path, capsys):
    npz = write_npz(tmp_path / "blobs.npz")
    argv = ["search", "--dataset", npz, "--out", tmp_path / "s", "--coarse", 3, "--fine", 2,
            "--l-min", -4, "--l-max", -1, *TINY]
    code, first, err = run(argv, capsys)
    assert code == 0, err
    assert len([line for line in err.splitlines() if line.startswith("[")]) == 5
    records = json.loads((tmp_path / "s" / "results.json").read_text())
    assert [r["phase"] for r in records].count("coarse") == 3 and len(records) == 5
    vals = [r["val_accuracy"] for r in records]
    assert vals == sorted(vals, reverse=True)
    coarse = [r["lam"] for r in records if r["phase"] == "coarse"]
    assert all(1e-4 <= lam <= 1e-1 for lam in coarse)
    best = max((r for r in records if r["phase"] == "coarse"), key=lambda r: r["val_accuracy"])
    assert all(abs(np.log10(r["lam"] / best["lam"])) <= 0.5 for r in records if r["phase"] == "fine")
    assert len((tmp_path / "s" / "results.csv").read_text().splitlines()) == 6
    md = (tmp_path / "s" / "results.md").read_text()
    assert md.count("\n|") == 14         # ranked, then in trial order
    # the search ranks by validation: no test accuracy in the tables, the CSV or the log
    assert "test " not in first + err and "test accuracy" not in md and "Test accuracy not shown" in md
    assert "test_accuracy" not in (tmp_path / "s" / "results.csv").read_text()

    code, second, err = run(argv, capsys)       # everything finished: nothing reruns
    assert code == 0 and second == first and "[" not in err
    assert len((tmp_path / "s" / "trials.jsonl").read_text().splitlines()) == 5


@pytest.mark.parametrize("argv, words", [
    (["--l-min", 0, "--l-max", -1], "l_min must be <= l_max"),
    (["--coarse", 0], "coarse must be"),
    (["--batch", 0], "batch must be"),
])
def test_search_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    code, stdout, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", *argv], capsys)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err


# ---- draws -------------------------------------------------------------------------------------
CHOICES = ("auto-8-auto", "auto-6-6-auto", "auto-12-auto")


def test_eta_max_and_sizes_draws_are_seeded_and_leave_the_lam_draws_alone():
    base = TrainConfig()
    plain = draws(SearchPlan().validate(), base, 0, 300)
    plan = SearchPlan(eta_max_range=(-2, -1), sizes_choices=",".join(CHOICES), search_seed=0).validate()
    points = draws(plan, base, 0, 300)
    assert [p["lam"] for p in points] == [p["lam"] for p in plain] == lam_values(-5, -1, 300, [0, 0])
    assert {p["eta_max"] for p in plain} == {base.eta_max} and {p["sizes"] for p in plain} == {base.sizes}
    etas = np.log10([p["eta_max"] for p in points])
    assert etas.min() >= -2 and etas.max() <= -1 and 0.4 < np.mean(etas < -1.5) < 0.6
    counts = [sum(p["sizes"] == c for p in points) for c in CHOICES]
    assert sum(counts) == 300 and min(counts) > 70          # uniform over the three: ~100 each
    assert draws(plan, base, 0, 300) == points


def test_fine_draws_keep_the_winners_architecture_near_its_lam_and_eta_max():
    base = TrainConfig(eta_min=1e-3)
    plan = SearchPlan(eta_max_range=(-3, -1), sizes_choices=",".join(CHOICES), width=0.5).validate()
    centre = {"lam": 1e-3, "eta_max": 2e-3, "sizes": "auto-6-6-auto"}
    points = draws(plan, base, 1, 200, centre)
    assert {p["sizes"] for p in points} == {"auto-6-6-auto"}
    assert all(abs(np.log10(p["lam"] / 1e-3)) <= 0.5 for p in points)
    etas = [p["eta_max"] for p in points]           # never below eta_min, which the schedule needs
    assert min(etas) >= 1e-3 and max(etas) <= 2e-3 * 10 ** 0.5


# ---- a search over lam, eta_max and the architecture, 2 seeds a trial, and its final run ------------
SEARCHED = ["--show-test", "--coarse", 3, "--fine", 2, "--repeats", 2, "--l-min", -4, "--l-max", -1,
            "--eta-max-range", -1.5, -0.5, "--sizes-choices", "auto-8-auto, auto-6-6-auto", *TINY[2:]]


def cli(argv):
    """Exit code, stdout and stderr of `fastmlp argv`, for module-scoped fixtures (no capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    folder = tmp_path_factory.mktemp("searched")
    npz = write_npz(folder / "blobs.npz")
    argv = ["search", "--dataset", npz, "--out", folder / "s", *SEARCHED, "--final", "--final-cycles", 2]
    code, stdout, err = cli(argv)
    assert code == 0, err
    return {"argv": argv, "out": folder / "s", "stdout": stdout, "err": err, "npz": npz,
            "records": json.loads((folder / "s" / "results.json").read_text())}


def table_rows(text):
    lines = [line for line in text.splitlines() if line.startswith("|")]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines]


def test_table_shows_the_searched_columns_with_mean_and_std(searched):
    rows = table_rows(searched["stdout"].split("\n\n")[0])
    assert rows[0] == ["rank", "trial", "phase", "layers", "lam", "eta_max", "sizes", "val accuracy",
                       "test accuracy", "train accuracy", "runs", "seconds"]
    assert len(rows) == 2 + 5 and all(r[10] == "2" and "±" in r[7] and "±" in r[8] for r in rows[2:])
    for row, record in zip(rows[2:], searched["records"]):
        assert row[1:7] == [record["key"], record["phase"], str(record["sizes"].count("-")), f"{record['lam']:.3e}",
                            f"{record['eta_max']:.3e}", record["sizes"]]
        assert row[7] == f"{100 * record['val_accuracy']:.2f}% ± {100 * record['val_accuracy_std']:.2f}"
    md = (searched["out"] / "results.md").read_text()
    assert md.count("\n|") == 14 and "Test accuracy not shown" not in md
    by_trial = table_rows(md.split("## In trial order")[1])
    assert [r[1] for r in by_trial[2:]] == ["coarse-0", "coarse-1", "coarse-2", "fine-0", "fine-1"]
    assert sorted(r[1:] for r in by_trial[2:]) == sorted(r[1:] for r in rows[2:])     # the same rows
    csv = (searched["out"] / "results.csv").read_text().splitlines()
    assert len(csv) == 6 and "eta_max" in csv[0] and "val_accuracy_std" in csv[0]
    assert len([line for line in searched["err"].splitlines() if line.startswith("[")]) == 5
    assert len([line for line in searched["err"].splitlines() if " seed " in line and line.startswith("  ")]) == 12


def test_each_trial_is_its_seeds_mean_and_the_ranking_uses_the_mean_val(searched):
    records = searched["records"]
    for r in records:
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        for key in ("val_accuracy", "test_accuracy", "train_accuracy"):
            values = [run[key] for run in r["runs"]]
            assert r[key] == pytest.approx(np.mean(values), abs=1e-12)
            assert r[f"{key}_std"] == pytest.approx(np.std(values, ddof=1), abs=1e-12)
        for one in r["runs"]:           # each seed's run folder holds that run, with this trial's settings
            metrics = json.loads((searched["out"] / "runs" / one["out"].split("/runs/")[1] / "metrics.json")
                                 .read_text())
            assert metrics["val_accuracy"] == one["val_accuracy"]
            assert {k: metrics["config"][k] for k in ("lam", "eta_max", "sizes", "seed")} == \
                {"lam": r["lam"], "eta_max": r["eta_max"], "sizes": r["sizes"], "seed": one["seed"]}
    vals = [r["val_accuracy"] for r in records]
    assert vals == sorted(vals, reverse=True)
    coarse = [r for r in records if r["phase"] == "coarse"]
    fine = [r for r in records if r["phase"] == "fine"]
    assert all(1e-4 <= r["lam"] <= 1e-1 and 10 ** -1.5 <= r["eta_max"] <= 10 ** -0.5 for r in coarse)
    assert {r["sizes"] for r in coarse} <= {"auto-8-auto", "auto-6-6-auto"}
    best_coarse = max(coarse, key=lambda r: r["val_accuracy"])
    assert {r["sizes"] for r in fine} == {best_coarse["sizes"]}
    assert all(abs(np.log10(r["lam"] / best_coarse["lam"])) <= 0.5 for r in fine)
    assert all(abs(np.log10(r["eta_max"] / best_coarse["eta_max"])) <= 0.5 for r in fine)
    # coarse then fine ends at least as good as the coarse best, and says so
    assert records[0]["val_accuracy"] >= best_coarse["val_accuracy"]
    assert (f"Best validation accuracy: coarse phase {100 * best_coarse['val_accuracy']:.2f}% "
            f"({best_coarse['key']}); after the fine phase {100 * records[0]['val_accuracy']:.2f}% "
            f"({records[0]['key']}).") in searched["stdout"]


def test_final_retrains_the_winner_for_more_cycles(searched):
    winner, folder = searched["records"][0], searched["out"] / "final"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["winner"]["key"] == winner["key"] and summary["final"]["cycles"] == 2
    assert summary["final"]["train_val"] is False and summary["seeds"] == [0, 1]
    for seed, one in zip((0, 1), summary["runs"]):
        metrics = json.loads((folder / f"seed-{seed}" / "metrics.json").read_text())
        assert {k: metrics["config"][k] for k in ("lam", "eta_max", "sizes", "cycles", "seed")} == \
            {**{k: winner[k] for k in ("lam", "eta_max", "sizes")}, "cycles": 2, "seed": seed}
        assert metrics["steps"] == 2 * 2 * 6 and metrics["n_val"] == 80     # 2 cycles of 2 n_s = 6 steps
        assert one["test_accuracy"] == metrics["test_accuracy"]
    final = searched["stdout"].split(f"Final: the search's winner {winner['key']}")[1]
    rows = table_rows(final)
    assert [r[0] for r in rows[2:]] == ["0", "1", "mean ± std"]
    mean = np.mean([r["test_accuracy"] for r in summary["runs"]])
    assert rows[-1][3].startswith(f"{100 * mean:.2f}% ± ") and summary["summary"]["test_accuracy"] == mean
    assert (folder / "summary.md").read_text().count("\n|") == 5


def test_rerun_reruns_nothing_and_a_lost_trial_reuses_its_run_folders(searched, tmp_path):
    out = tmp_path / "s"
    shutil.copytree(searched["out"], out)
    argv = [a if a != searched["out"] else out for a in searched["argv"]]
    code, stdout, err = cli(argv)
    assert code == 0 and stdout == searched["stdout"].replace(str(searched["out"]), str(out)), err
    assert not [line for line in err.splitlines() if line.startswith("[")]
    lines = (out / "trials.jsonl").read_text().splitlines()
    lost = json.loads(lines[-1])
    (out / "trials.jsonl").write_text("\n".join(lines[:-1]) + "\n")    # as if stopped before writing it
    models = [out / "runs" / run["out"].split("/runs/")[1] / "model.npz" for run in lost["runs"]]
    stamps = [m.stat().st_mtime_ns for m in models]
    code, again, err = cli(argv)
    assert code == 0 and again == stdout, err
    n = 3 if lost["phase"] == "coarse" else 2            # only the lost trial is logged, as the last of its phase
    assert [line.split("]")[0] + "]" for line in err.splitlines() if line.startswith("[")] == \
        [f"[{lost['phase']} {n}/{n}]"]
    assert [m.stat().st_mtime_ns for m in models] == stamps


def test_final_on_train_and_validation_rows_has_no_validation_score(searched, tmp_path):
    out = tmp_path / "s"
    shutil.copytree(searched["out"], out)
    argv = [a if a != searched["out"] else out for a in searched["argv"]] + ["--final-train-val"]
    code, _, err = cli(argv)               # the final folder holds the other kind of final run
    assert code == 2 and "final holds the final run of another setting (train_val=False)" in err
    assert len(err.splitlines()) == 1 and f"remove {out / 'final'}" in err
    shutil.rmtree(out / "final")
    code, stdout, err = cli(argv)
    assert code == 0, err
    assert "Trained on the training and validation rows together" in stdout
    assert "the test accuracy is the score to report" in stdout
    summary = json.loads((out / "final" / "summary.json").read_text())
    assert summary["final"]["train_val"] is True and summary["summary"]["val_accuracy"] is None
    metrics = json.loads((out / "final" / "seed-0" / "metrics.json").read_text())
    assert metrics["val_accuracy"] is None and metrics["n_val"] == 0 and metrics["n_train"] == 400
    assert "trained on both, no validation rows" in metrics["dataset"]
    assert table_rows(stdout.split("Final: ")[1])[-1][2] == "-"


# ---- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("argv, words", [
    (["--eta-max-range", -1, -2], "eta_max_range must be LO <= HI <= 1"),
    (["--eta-max-range", -6, -1], "eta_max_range LO must be >= log10(eta_min)"),
    (["--eta-max-range", -2, -1, "--schedule", "constant"], "eta_max_range searches the cyclic schedule"),
    (["--eta-max-range", -2, -1, "--eta-max", 0.1], "--eta-max fixes eta_max for every trial but --eta-max-range"),
    (["--sizes-choices", "auto-8-auto,auto-x-auto"], "sizes_choices entry 2 ('auto-x-auto') is not"),
    (["--sizes-choices", "auto-8-auto,,auto-9-auto"], "sizes_choices must be layer widths separated by commas"),
    (["--sizes-choices", "auto-8-auto", "--sizes", "auto-9-auto"], "--sizes fixes sizes for every trial"),
    (["--repeats", 0], "repeats must be an integer >= 1; got 0"),
    (["--final-cycles", 4], "final_cycles sets the final run of the winner, which needs final; add --final"),
    (["--final-train-val"], "final_train_val sets the final run"),
    (["--final", "--final-cycles", 0], "final_cycles must be an integer >= 1; got 0"),
    (["--workers", 2, "--dask-scheduler", "tcp://127.0.0.1:8786"], "drop workers"),
])
def test_search_plan_bad_input_exits_2_with_one_line(tmp_path, capsys, argv, words):
    code, stdout, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", *argv], capsys)
    assert code == 2 and stdout == "" and len(err.splitlines()) == 1 and words in err, err
    assert not (tmp_path / "s").exists()


def test_another_search_in_the_same_folder_is_refused(searched, capsys):
    argv = [a if a != "auto-8-auto, auto-6-6-auto" else "auto-8-auto" for a in searched["argv"]]
    code, _, err = run(argv, capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "holds a search with sizes_choices=['auto-8-auto', 'auto-6-6-auto'], not ['auto-8-auto']" in err


def test_dask_scheduler_without_dask_says_how_to_install_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)       # import distributed -> ImportError
    code, _, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", "--dask-scheduler",
                        "tcp://127.0.0.1:8786"], capsys)
    assert code == 2 and len(err.splitlines()) == 1
    assert "dask_scheduler='tcp://127.0.0.1:8786' needs dask.distributed" in err
    assert 'pip install "fastmlp[dask]"' in err


def test_unreachable_dask_scheduler_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("distributed", reason="dask.distributed is not installed (pip install \"fastmlp[dask]\")")
    monkeypatch.setattr(executors, "DASK_CONNECT_TIMEOUT", 0.5)
    code, _, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s", "--dask-scheduler",
                        "tcp://127.0.0.1:9"], capsys)
    assert code == 2 and len(err.splitlines()) == 1 and "cannot reach a Dask scheduler there" in err, err


def test_ctrl_c_says_how_to_continue_the_search(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(search_module, "search", interrupted)
    code, stdout, err = run(["search", "--dataset", "sample", "--out", tmp_path / "s"], capsys)
    assert code == 130 and stdout == "" and err == (
        f"fastmlp: search interrupted. Continue with the same command and --out {tmp_path / 's'}: finished "
        f"trials are kept and interrupted runs resume from their checkpoints.\n")
