"""`fastmlp report`: the whole DD2424 Assignment 3 study on one data set, as one HTML page.

The steps, each in its own folder OUT/<step>/ and each run through the function its own command
uses (nothing here trains or tabulates by itself):

gradients  the gradient table of a 2-layer net without BN and 3- and 4-layer nets with BN
           (studies.gradtable, as `fastmlp gradcheck`)
layers     2-, 3- and 9-layer networks, with and without BN, over seeds: the baseline runs and
           the depth study (studies.trials with the depth design, as `fastmlp study depth`)
search     coarse -> fine random search for lam, then the winner retrained for 3 cycles
           (studies.search, as `fastmlp search --final`)
init       N(0, sigma^2) vs He initialisation, with and without BN (`fastmlp study init`)
eta        constant learning rate small / medium / large, with and without BN (`fastmlp study eta`)

A step writes OUT/<step>/step.json first (its settings: the command that reproduces it and the
base config) and marks it finished when its outputs are written.  A rerun with the same OUT skips
a finished step whose settings are unchanged and whose outputs are there, continues an unfinished
one (the runs that finished are reused, studies.trials.run_or_reuse), and reruns from scratch a
step whose settings changed.  The page (html.py) shows every table and every PNG a step wrote,
listed from its folder, so figures that the studies add later appear without changes here.
"""
import dataclasses
import json
import shlex
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from .. import jsonio, lock
from ..config import TrainConfig
from .designs import ETAS, SIGMAS
from .search_state import check_integer, portable

STEPS = ("gradients", "layers", "search", "init", "eta")
STEP_FILE = "step.json"
GRADIENT_NETS = (("auto-50-auto", False), ("auto-50-50-auto", True), ("auto-50-50-50-auto", True))
LAYERS = ("50", "50-50", "50-30-20-20-10-10-10-10")     # hidden widths of the 2-, 3- and 9-layer nets
MAX_SEEDS = 1000                                        # as study --seeds
QUICK_BASE = {"ns_epochs": 2.0, "cycles": 1}            # --quick: one short cycle per run


def _arg(default, help, **cli):
    return field(default=default, metadata={"help": help, **cli})


@dataclass
class ReportPlan:
    """Every setting of a report but the base TrainConfig; `fastmlp report` has one flag per field.
    None takes the preset: the study's sizes, or --quick's smaller ones (shown after the slash)."""
    quick: bool = _arg(False, "a version of a few minutes: runs of one cycle of n_s = 2 epochs (unless "
                              "--cycles / --ns-epochs are given), 1 seed, a smaller search", action="store_true")
    steps: str = _arg(",".join(STEPS), "the steps to run, comma-separated, in this order", metavar="STEP,...")
    seeds: int | None = _arg(None, "runs per trial of layers, init and eta (3 / 1)", type=int)
    coarse: int | None = _arg(None, "coarse trials of the lam search (8 / 4)", type=int)
    fine: int | None = _arg(None, "fine trials of the lam search (8 / 3)", type=int)
    l_min: float = _arg(-5.0, "log10 of the smallest lam of the coarse phase", type=float)
    l_max: float = _arg(-1.0, "log10 of the largest lam of the coarse phase", type=float)
    width: float = _arg(0.5, "decades either side of the coarse winner searched by the fine phase", type=float)
    final_cycles: int = _arg(3, "cycles of the search winner's final run", type=int)
    workers: int | None = _arg(None, "worker processes of the search; unset: 2", type=int)
    hidden: tuple = _arg(LAYERS, "hidden widths of the networks of the layers step, each joined by '-'",
                         nargs="+", metavar="WIDTHS")
    sigmas: tuple = _arg(SIGMAS, "standard deviations of the N(0, sigma^2) inits of the init step",
                         type=float, nargs="+", metavar="SIGMA")
    etas: tuple = _arg(ETAS, "constant learning rates of the eta step", type=float, nargs="+", metavar="ETA")
    grad_n: int = _arg(20, "images of the gradient check", type=int)
    grad_dims: int = _arg(50, "first input features of the gradient check", type=int)

    def resolved(self):
        """The plan with its presets filled in and every field checked."""
        full, quick = {"seeds": 3, "coarse": 8, "fine": 8}, {"seeds": 1, "coarse": 4, "fine": 3}
        plan = replace(self, **{k: v for k, v in (quick if self.quick else full).items()
                                if getattr(self, k) is None})
        names = [s.strip() for s in str(plan.steps).split(",") if s.strip()]
        unknown = [s for s in names if s not in STEPS]
        if unknown or not names:
            raise ValueError(f"steps must be some of {','.join(STEPS)}, comma-separated; got {self.steps!r}.")
        plan.steps = ",".join(s for s in STEPS if s in names)
        for name, lo in (("seeds", 1), ("coarse", 1), ("fine", 0), ("final_cycles", 1), ("grad_n", 2),
                         ("grad_dims", 1)):
            check_integer(name, getattr(plan, name), lo)
        for name in ("hidden", "sigmas", "etas"):
            values = getattr(plan, name)
            if isinstance(values, (str, float, int)) or not values:
                raise ValueError(f"{name} must be a list of one or more values; got {values!r}.")
            setattr(plan, name, tuple(values))
        if plan.seeds > MAX_SEEDS:
            raise ValueError(f"seeds must be at most {MAX_SEEDS} (runs per trial); got {plan.seeds}.")
        return plan


@dataclass
class Step:
    """One step of the report: its folder name, title, settings and the work that fills the folder."""
    name: str
    title: str
    command: str            # the fastmlp command that reproduces this step on its own
    run: object             # run(folder, log): trains and writes the step's files
    outputs: tuple          # files (relative to the folder) that a finished step has written
    settings: dict = field(default_factory=dict)


def base_config(given, plan):
    """The TrainConfig every run starts from: the preset of --quick under the flags given."""
    preset = QUICK_BASE if plan.quick else {}
    preset = {k: v for k, v in preset.items() if k not in given and not ("ns" in given and k == "ns_epochs")}
    config = TrainConfig.from_sources(("report preset", preset), ("command line", given)).validate()
    return portable(replace(config, out=None)).validate()


def plan_steps(base, plan, out):
    """The Steps of the report, in order, for `base` and a resolved `plan`."""
    from .designs import STUDIES
    out = Path(out)
    made = {
        "gradients": lambda: _gradient_step(base, plan, out / "gradients"),
        "layers": lambda: _study_step("layers", STUDIES["depth"], plan.hidden, base, plan, out / "layers",
                                      _layers_title(plan.hidden)),
        "search": lambda: _search_step(base, plan, out / "search"),
        "init": lambda: _study_step("init", STUDIES["init"], plan.sigmas, base, plan, out / "init"),
        "eta": lambda: _study_step("eta", STUDIES["eta"], plan.etas, base, plan, out / "eta"),
    }
    steps = [made[name]() for name in plan.steps.split(",")]
    for step in steps:      # what decides a step's results; the folder is not part of them
        step.settings = {"command": step.command.replace(str(out), "OUT"), "base": base.to_dict()}
    return steps


def _layers_title(hidden):
    """'2-, 3- and 9-layer networks, ...' for the hidden widths '50', '50-50', '50-30-...-10'."""
    counts = [f"{len(h.split('-')) + 1}-" for h in hidden]
    listed = counts[0] if len(counts) == 1 else f"{', '.join(counts[:-1])} and {counts[-1]}"
    return f"{listed}layer networks, with and without batch norm (the baseline runs and the depth study)"


def _gradient_step(base, plan, folder):
    from .gradtable import check_gradients, write_report
    commands = [f"fastmlp gradcheck --dataset {shlex.quote(base.dataset)}"
                + (f" --data-dir {shlex.quote(base.data_dir)}" if base.data_dir else "")
                + f" --sizes {sizes} --{'' if bn else 'no-'}batch-norm --lam {base.lam!r} --n {plan.grad_n}"
                  f" --dims {plan.grad_dims} --seed {base.seed} --out {shlex.quote(str(folder / f'net{k + 1}'))}"
                for k, (sizes, bn) in enumerate(GRADIENT_NETS)]

    def run(folder, log):
        for k, (sizes, bn) in enumerate(GRADIENT_NETS):
            rows, settings = check_gradients(base.dataset, sizes, bn, base.lam, plan.grad_n, plan.grad_dims,
                                             base.seed, base.data_dir)
            write_report(folder / f"net{k + 1}", rows, settings)
            log(f"  gradients: {sizes} {'with' if bn else 'without'} BN, largest relative error "
                f"{largest_rel_error(rows):.2e}")
    return Step("gradients", "Gradient check: analytic vs centred differences, per parameter",
                "\n".join(commands), run,
                tuple(f"net{k + 1}/gradcheck.md" for k in range(len(GRADIENT_NETS))))


def _study_step(name, design, values, base, plan, folder, title=None):
    from .study_results import write_study
    from .trials import run_trials
    trials = design.trials(values)
    skip = {*design.varies, "out"}

    def run(folder, log):
        outcomes = run_trials(trials, base, range(base.seed, base.seed + plan.seeds), folder,
                              log=lambda line: log("  " + line))
        write_study(folder, design.name, outcomes, design.columns(), title or design.title)
    command = (f"fastmlp study {design.name} {design.option} {' '.join(map(str, values))} --seeds {plan.seeds}"
               f"{config_flags(base, skip)} --out {shlex.quote(str(folder))}")
    return Step(name, title or design.title, command, run, ("results.md", "results.json", "configs.json"))


def _search_step(base, plan, folder):
    from .search import SearchPlan, search, write_search
    search_plan = SearchPlan(l_min=plan.l_min, l_max=plan.l_max, coarse=plan.coarse, fine=plan.fine,
                             width=plan.width, workers=plan.workers, final=True, final_cycles=plan.final_cycles
                             ).validate()     # its errors before any step runs

    def run(folder, log):
        records, _ = search(base, folder, search_plan, log=lambda line: log("  " + line))
        write_search(folder, records, search_plan)
    command = (f"fastmlp search --l-min {plan.l_min} --l-max {plan.l_max} --coarse {plan.coarse} "
               f"--fine {plan.fine} --width {plan.width} --final --final-cycles {plan.final_cycles}"
               + (f" --workers {plan.workers}" if plan.workers else "")
               + config_flags(base, {"lam", "out", "threads"}) + f" --out {shlex.quote(str(folder))}")
    return Step("search", "Search for lam: coarse, then fine, then the winner retrained for "
                f"{plan.final_cycles} cycles", command, run, ("results.md", "results.json", "final/summary.md"))


def largest_rel_error(rows):
    """The largest relative error of a gradient table, leaving out the gradients that are zero by
    construction (the biases before batch norm), whose 'error' compares rounding noise."""
    return max(r["rel_error"] for r in rows if not r.get("zero_gradient"))


def config_flags(config, skip=()):
    """The `fastmlp train` flags that give `config` (fields at their default are left out), as
    one string starting with a space; `skip`: fields not shown."""
    default = TrainConfig()
    parts = []
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in skip or value == getattr(default, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        elif isinstance(value, (list, tuple)):
            parts += [flag, ("-" if f.name == "sizes" else ",").join(map(str, value))]
        else:
            parts += [flag, str(value)]        # str of a float is its shortest exact form: 1e-05, 0.005
    return "".join(" " + shlex.quote(p) for p in parts)


# ---- running the steps, reusing the finished ones ------------------------------------------------
@dataclass
class Done:
    """A step after this session: its folder, settings record, and whether it was reused."""
    step: Step
    folder: Path
    record: dict
    reused: bool


def run_report(base, plan, out, command="", log=print):
    """Run (or reuse) every step of `plan` into OUT/<step>/, then write OUT/report.html and
    OUT/report.md; return (the Done steps, the two paths).  The lock on OUT is held throughout."""
    from .html import write_pages
    plan = plan.resolved()
    out = Path(out).resolve()
    with lock.hold(out, "fastmlp report"):
        steps = plan_steps(base, plan, out)
        done = []
        for k, step in enumerate(steps):
            log(f"[{k + 1}/{len(steps)}] {step.title}")
            done.append(_run_or_reuse(step, out / step.name, log))
        pages = write_pages(out, done, base, plan, command)
    return done, pages


def _run_or_reuse(step, folder, log):
    path = folder / STEP_FILE
    stored = _read_step(path)
    if stored is not None and stored.get("settings") != _plain(step.settings):
        log(f"  {folder.name}: the settings changed ({_first_change(stored.get('settings'), step.settings)}); "
            f"its old results are removed and the step runs again.")
        shutil.rmtree(folder)
        stored = None
    elif stored is None and folder.exists() and any(folder.iterdir()):
        raise ValueError(f"{folder} exists but holds no {STEP_FILE}, so it is not a step of a fastmlp report; "
                         f"move it away or choose another --out.")
    if stored is not None and stored.get("finished") and all((folder / f).is_file() for f in step.outputs):
        log(f"  reused: {folder} finished in an earlier session ({stored['seconds']:.1f} s then).")
        return Done(step, folder, stored, True)
    folder.mkdir(parents=True, exist_ok=True)
    record = {"step": step.name, "settings": step.settings, "finished": False, "seconds": None}
    jsonio.write(path, record)
    tic = time.perf_counter()
    step.run(folder, log)
    record.update(finished=True, seconds=time.perf_counter() - tic,
                  finished_at=time.strftime("%Y-%m-%d %H:%M:%S %Z"))
    jsonio.write(path, record)
    return Done(step, folder, _plain(record), False)


def _read_step(path):
    if not path.exists():
        return None
    try:
        record = json.loads(path.read_bytes())
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict) or not isinstance(record.get("settings"), dict):
        raise ValueError(f"{path} is not a report step's record (not a JSON object with its settings); "
                         f"remove {path.parent} to run that step again.")
    return record


def _plain(value):
    return json.loads(jsonio.dumps(value))


def _first_change(old, new):
    old, new = old or {}, _plain(new)
    for key in ("base", "command"):
        a, b = old.get(key), new.get(key)
        if key == "base" and isinstance(a, dict) and isinstance(b, dict):
            for name in b:
                if a.get(name) != b[name]:
                    return f"{name}: {a.get(name)!r} -> {b[name]!r}"
        elif a != b:
            return f"command: {a!r} -> {b!r}"
    return "its record differs"
