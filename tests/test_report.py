"""`fastmlp report` with the smallest settings on a tiny synthetic dataset: every step runs, the
page is self-contained and shows every table and figure, a rerun reuses the finished steps, a
changed setting reruns its steps, and each step's command is one `fastmlp` accepts."""
import base64
import contextlib
import io
import json
import re
import shlex

import pytest

from fastmlp.cli import build_parser, main
from fastmlp.plots import OVERVIEW
from fastmlp.studies.fullreport import ReportPlan, base_config, plan_steps
from test_cli import run
from test_studies import npz  # noqa: F401  (the tiny synthetic dataset of the studies' tests)
from conftest import plain_run_figures, pool_in_threads

TINY = ["--ns", 3, "--cycles", 1, "--batch", 50, "--train-eval", 0, "--n-val", 100, "--seeds", 1,
        "--coarse", 1, "--fine", 1, "--final-cycles", 1, "--workers", 1, "--grad-n", 4, "--grad-dims", 5,
        "--hidden", "8", "8-8", "--sigmas", 0.1, "--etas", 0.01]
STEPS = ["gradients", "layers", "search", "init", "eta"]


@pytest.fixture(scope="module", autouse=True)
def cheap_runs():
    """Each run's figures as a stub PNG, and the search's pool in threads (conftest.py says why)."""
    with plain_run_figures(), pool_in_threads():
        yield


@pytest.fixture(scope="module")
def report(npz, tmp_path_factory):
    """A whole tiny report, run once for the tests of this module: (out folder, stdout, stderr).
    (capsys is per test, so the output is captured here by hand.)"""
    out = tmp_path_factory.mktemp("report") / "rep"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in ["report", "--dataset", npz, "--out", out, *TINY]])
    assert code == 0, stderr.getvalue()
    return out, stdout.getvalue(), stderr.getvalue()


def test_every_step_runs_and_writes_its_files(report):
    out, stdout, _ = report
    assert "5 steps (5 ran, 0 reused)" in stdout
    for step in STEPS:
        record = json.loads((out / step / "step.json").read_text())
        assert record["finished"] and record["step"] == step
    for name in ("gradients/net1/gradcheck.md", "gradients/net3/gradcheck.md", "layers/results.md",
                 "search/results.md", "search/final/summary.md", "init/results.md", "eta/results.md"):
        assert (out / name).is_file(), name
    # the layers step: the nets of --hidden, each without and with batch norm
    rows = json.loads((out / "layers" / "results.json").read_text())["trials"]
    assert [(r["layers"], r["batch norm"]) for r in rows] == [(2, "no"), (3, "no"), (2, "yes"), (3, "yes")]
    # the search's winner retrained for --final-cycles cycles
    final = json.loads((out / "search" / "final" / "summary.json").read_text())
    assert final["final"]["cycles"] == 1 and final["config"]["cycles"] == 1


def test_the_full_plan_is_the_study(tmp_path):
    # without --quick and other flags: the A3 study's grids, runs, seeds and search
    plan = ReportPlan().resolved()
    assert (plan.hidden, plan.sigmas, plan.etas) == (("50", "50-50", "50-30-20-20-10-10-10-10"),
                                                     (0.1, 1e-3, 1e-4), (1e-3, 1e-2, 1e-1))
    assert (plan.seeds, plan.coarse, plan.fine, plan.final_cycles) == (3, 8, 8, 3)
    base = base_config({"dataset": "sample"}, plan)
    assert (base.ns_epochs, base.cycles) == (5.0, 2)
    steps = {s.name: s for s in plan_steps(base, plan, tmp_path)}
    assert list(steps) == STEPS
    assert "fastmlp study depth --hidden 50 50-50 50-30-20-20-10-10-10-10 --seeds 3" in steps["layers"].command
    assert "--l-min -5.0 --l-max -1.0 --coarse 8 --fine 8 --width 0.5 --final --final-cycles 3" in steps["search"].command
    quick = ReportPlan(quick=True).resolved()
    assert (quick.seeds, quick.coarse, quick.fine) == (1, 4, 3)
    assert (base_config({"dataset": "sample"}, quick).cycles, base_config({"cycles": 2}, quick).cycles) == (1, 2)


def test_html_is_self_contained_and_shows_every_table_and_figure(report):
    out = report[0]
    page = (out / "report.html").read_text(encoding="utf-8")
    # nothing fetched: no external URL, stylesheet or script; every image inlined
    assert not re.search(r"(src|href)=\"(?!data:|#)", page)
    assert "<script" not in page and "<link" not in page and "http" not in page
    images = re.findall(r'<img alt="[^"]*" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    pngs = sorted(out.rglob("*.png"))
    # a step's own figures, and of each run its four-panel curves.png (its single-panel cost,
    # loss and accuracy PNGs show the same curves: report.md links them, the page does not inline them)
    shown = [p for p in pngs if p.parent.parent == out or p.name == OVERVIEW
             or not (p.parent / OVERVIEW).is_file()]
    assert len(images) == len(shown) == page.count("<img ") < len(pngs)
    assert {base64.b64decode(i)[:8] for i in images} == {b"\x89PNG\r\n\x1a\n"}
    # every step's table, its command and its config
    for step in STEPS:
        assert f'<h2 id="{step}">' in page
    # the summary names the best trial's settings and scores, not its lists of per-seed results
    summary = page[:page.index('<h2 id="gradients">')]
    assert re.search(r"best by validation: layers \d, hidden [\d-]+, batch norm (yes|no) \(val [\d.]+%, test "
                     r"[\d.]+%\)", summary) and "val_loss" not in summary and "[" not in summary
    assert page.count("<table>") == 1 + 3 + 1 + 3 + 1 + 1   # summary, 3 gradient, layers, search (by rank, in trial order, final), init, eta
    assert page.count("fastmlp study ") == 3 and page.count("fastmlp gradcheck ") == 3
    assert "fastmlp search " in page and '"lam": 0.005' in page
    # long commands are broken before a flag with a shell continuation, not wrapped inside a flag
    blocks = re.findall(r"<h3>Command</h3>\n<pre>(.*?)</pre>", page, re.S)
    for step, block in zip(STEPS, blocks):
        command = json.loads((out / step / "step.json").read_text())["settings"]["command"]
        assert block.replace(" \\\n    --", " --") == command.replace("OUT", str(out))
    assert " \\\n    --" in blocks[0]       # the gradient check's lines are long
    md = (out / "report.md").read_text(encoding="utf-8")
    for png in pngs:
        assert png.relative_to(out).as_posix() in md


def test_each_step_command_is_a_fastmlp_command(report):
    out = report[0]
    parser = build_parser()
    for step in STEPS:
        command = json.loads((out / step / "step.json").read_text())["settings"]["command"]
        for line in command.splitlines():
            argv = shlex.split(line)
            assert argv[0] == "fastmlp"
            parser.parse_args(argv[1:])      # argparse exits (a test failure) on an unknown flag
            assert "--dataset" in argv and "--ns" in argv or step == "gradients"


def test_rerun_reuses_finished_steps_and_a_changed_setting_reruns(report, npz, capsys):
    out = report[0]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("results.md")}
    code, stdout, err = run(["report", "--dataset", npz, "--out", out, *TINY], capsys)
    assert code == 0, err
    assert "5 steps (0 ran, 5 reused)" in stdout and err.count("reused: ") == 5
    assert {p: p.stat().st_mtime_ns for p in out.rglob("results.md")} == before
    assert "reused: finished in an earlier session" in (out / "report.html").read_text()
    # a new lam changes every step's settings; only the steps asked for run, again from scratch
    code, stdout, err = run(["report", "--dataset", npz, "--out", out, *TINY, "--lam", "0.01",
                             "--steps", "eta,gradients"], capsys)
    assert code == 0, err
    assert "2 steps (2 ran, 0 reused)" in stdout
    assert "the settings changed (lam: 0.005 -> 0.01)" in err
    configs = json.loads((out / "eta" / "configs.json").read_text())
    assert {c["config"]["lam"] for c in configs} == {0.01}


@pytest.mark.parametrize("unfinished", [True, False])
def test_a_step_left_unfinished_or_missing_an_output_is_continued(npz, tmp_path, capsys, unfinished):
    # a step killed before its end (step.json not yet finished), or one whose results.md is gone
    out = tmp_path / "rep"
    argv = ["report", "--dataset", npz, "--out", out, *TINY, "--steps", "eta"]
    assert run(argv, capsys)[0] == 0
    if unfinished:
        record = json.loads((out / "eta" / "step.json").read_text())
        (out / "eta" / "step.json").write_text(json.dumps({**record, "finished": False}))
    else:
        (out / "eta" / "results.md").unlink()
    models = {p: p.stat().st_mtime_ns for p in out.rglob("model.npz")}
    code, stdout, err = run(argv, capsys)
    assert code == 0, err
    assert "1 step (1 ran, 0 reused)" in stdout and (out / "eta" / "results.md").is_file()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("model.npz")} == models    # the runs were reused
    assert "the settings changed" not in err      # continued, not started again


@pytest.mark.parametrize("flags, message", [
    (["--steps", "gradients,depht"], "steps must be some of gradients,layers,search,init,eta"),
    (["--seeds", "0"], "seeds must be an integer >= 1"),
    (["--coarse", "0"], "coarse must be an integer >= 1"),
    (["--l-min", "2", "--l-max", "1"], "l_min must be <= l_max"),
])
def test_bad_settings_are_one_line_errors(npz, tmp_path, capsys, flags, message):
    code, _, err = run(["report", "--dataset", npz, "--out", tmp_path / "rep", *flags], capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "rep" / "gradients").exists()      # refused before any step ran


def test_a_folder_that_is_not_a_report_step_is_refused(npz, tmp_path, capsys):
    (tmp_path / "rep" / "eta").mkdir(parents=True)
    (tmp_path / "rep" / "eta" / "mine.txt").write_text("keep me")
    code, _, err = run(["report", "--dataset", npz, "--out", tmp_path / "rep", *TINY, "--steps", "eta"], capsys)
    assert code == 2 and "holds no step.json" in err
    assert (tmp_path / "rep" / "eta" / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]", '{"settings": 3}'])
def test_a_damaged_step_record_is_a_one_line_error(npz, tmp_path, capsys, text):
    (tmp_path / "rep" / "eta").mkdir(parents=True)
    (tmp_path / "rep" / "eta" / "step.json").write_text(text)
    code, _, err = run(["report", "--dataset", npz, "--out", tmp_path / "rep", *TINY, "--steps", "eta"], capsys)
    errors = [line for line in err.splitlines() if line.startswith("fastmlp: error: ")]
    assert code == 2 and len(errors) == 1 and "step.json is not a report step's record" in errors[0]
