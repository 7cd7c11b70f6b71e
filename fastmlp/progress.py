"""What a person watching a run sees: the kernels' compile, the training's progress, and the
progress of a study, search or --repeats over its runs.

Where the output goes decides its form (`mode`):
- a notebook kernel with ipywidgets: tqdm.auto's widget bar;
- a terminal (stderr is a TTY): a tqdm bar on stderr;
- anything else (piped, a log file, a notebook without widgets): plain lines on stderr, one per
  epoch or per run, since a bar redrawn with carriage returns is unreadable there and tqdm's
  `disable=None` shows nothing at all until the end.
Accuracies are shown in %, as the tables show them.

The first run compiles the Numba kernels (about compile_seconds(); later runs load them from Numba's
cache): CompileClock says so when a compile starts, and measures the time spent compiling or
loading compiled kernels so that the trainer reports it apart from training and evaluation.
"""
import math
import sys
import threading
import time

from numba.core import event

def compile_seconds():
    """About how long the first run compiles, with the cores this process may use.  Measured: a
    cold first step compiled for 8.2-8.9 s on the 2-core znver4 machine, the products compiled
    in a second process meanwhile (kernels/coldstart.py), and 15.1-16.1 s in one process (28-34
    s before the products were compiled once, kernels/native.py); on a slower 2-core znver3
    machine `fastmlp train --dataset sample` reported compile 11.5-18.3 s, and 22-29 s on one of
    its cores.  A figure in the middle: the notice is to say the wait is expected, not to time it."""
    from fastmlp.kernels.coldstart import cores
    return 15 if cores() >= 2 else 25


_announced = False      # the compile notice is shown once per process


def mode():
    """'widget', 'bar' or 'lines': how progress reaches a person from here (see the docstring)."""
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        # In a notebook kernel without ipywidgets, tqdm warns on import, naming its own source line
        # and asking to "update jupyter"; say instead, once, what to install.  (tqdm.auto: its
        # experimental-feature warning silenced.)
        warnings.simplefilter("always")
        import tqdm.auto  # noqa: F401
    if any("IProgress not found" in str(w.message) for w in caught):
        say("Progress is shown as lines: ipywidgets, which draws progress bars in a notebook, is not "
            'installed (pip install "fastmlp[notebook]").')
    from tqdm import autonotebook, std
    if autonotebook.tqdm is not std.tqdm:     # a notebook kernel with ipywidgets
        return "widget"
    isatty = getattr(sys.stderr, "isatty", None)
    return "bar" if isatty is not None and isatty() else "lines"


def say(line):
    """One line for people on stderr, drawn above any open tqdm bar."""
    from tqdm import tqdm
    tqdm.write(line, file=sys.stderr)
    sys.stderr.flush()


def clock(seconds):
    """seconds as h:mm:ss or m:ss."""
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def compile_notice():
    """Say once per process that the kernels are being compiled, and for about how long."""
    global _announced
    if not _announced:
        _announced = True
        say(f"Compiling fastmlp's kernels (first run only, about {compile_seconds()} s)...")


class CompileClock(event.Listener):
    """While entered: `seconds` spent by this thread in Numba's compiler, compiling kernels or
    loading them from the cache (Numba's 'numba:compiler_lock' events, outermost only), and
    `notice()` called when a kernel is actually compiled ('numba:compile', a cache miss).
    Events from other threads are left out: they are someone else's compile."""

    def __init__(self, notice=None):
        self.seconds, self.notice = 0.0, notice
        self._depth, self._thread = 0, threading.get_ident()

    def on_start(self, ev):
        if threading.get_ident() != self._thread:
            return
        if ev.kind == "numba:compile":
            if self.notice is not None:
                self.notice()
            return
        if self._depth == 0:
            self._tic = time.perf_counter()
        self._depth += 1

    def on_end(self, ev):
        if threading.get_ident() != self._thread or ev.kind == "numba:compile":
            return
        self._depth -= 1
        if self._depth == 0:
            self.seconds += time.perf_counter() - self._tic

    def __enter__(self):
        event.register("numba:compiler_lock", self)
        event.register("numba:compile", self)
        return self

    def __exit__(self, *exc):
        event.unregister("numba:compile", self)
        event.unregister("numba:compiler_lock", self)


class TrainProgress:
    """The trainer's progress: a bar showing the epoch, the live batch loss and the last
    evaluation's accuracies, or a line per epoch; nothing when `enabled` is false.

    total: the run's steps; steps_per_epoch: steps of an epoch; step: where it starts (resume)."""

    # What the bar shows, in as few columns as it can: in an 80-column terminal (tmux's default, and
    # the pseudo-terminal of a notebook's `!fastmlp train`) tqdm's default, with the step count, the
    # rate and `train_acc=` names, cut the accuracies off.  The epoch stands for the step count.
    BAR_FORMAT = "{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}"

    def __init__(self, enabled, total, steps_per_epoch, step=0):
        self.mode = mode() if enabled else None
        self.total, self.spe, self.epochs = total, steps_per_epoch, -(-total // steps_per_epoch)
        self.tic, self.bar, self.seen, self.compiled = time.perf_counter(), None, None, False
        if self.mode in ("widget", "bar"):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, mininterval=0.5,
                            desc=self._epoch(step), bar_format=self.BAR_FORMAT, file=sys.stderr)

    def _epoch(self, step):
        return f"epoch {min(step // self.spe + 1, self.epochs)}/{self.epochs}"

    def notice(self):
        """The CompileClock notice, when progress is shown."""
        self.compiled = True
        if self.mode is not None:
            compile_notice()

    def advance(self, step, steps, loss, history):
        """`steps` more steps were taken, up to `step`; `loss`: the last one's batch loss."""
        if self.mode is None:
            return
        evals = len(history.evals)
        last = history.row(-1)
        restart, self.compiled = self.compiled, False
        if restart:         # the lines' clock, as the bar's, counts training, not the compile
            self.tic = time.perf_counter()
        if self.bar is not None:
            if restart:     # the compile is reported apart; left in the bar's clock, it made the rate
                self.bar.reset()          # 30 s/step and the ETA far too long on a first run
                self.bar.n = self.bar.last_print_n = self.bar.initial = step
            else:
                self.bar.update(steps)
            if restart or evals != self.seen or self.bar.n % 25 < steps:
                self.bar.set_description_str(self._epoch(step), refresh=False)
                scores = [f"{part} {100 * last[f'{part}_accuracy']:.1f}%" for part in ("train", "val")
                          if math.isfinite(last[f"{part}_accuracy"])]
                self.bar.set_postfix_str(", ".join([f"loss {loss:.3f}", *scores]), refresh=restart)
        elif evals != self.seen and (step % self.spe == 0 or step == self.total):
            say(self._line(step, last))
        self.seen = evals

    def _line(self, step, last):
        """The line of an epoch's end (the last evaluation's scores), for output without a bar."""
        parts = [f"epoch {-(-step // self.spe)}/{self.epochs}, step {step}/{self.total}:"]
        for part in ("train", "val"):
            if math.isfinite(last[f"{part}_loss"]):
                parts.append(f"{part} loss {last[f'{part}_loss']:.4f} cost {last[f'{part}_cost']:.4f} "
                             f"accuracy {100 * last[f'{part}_accuracy']:.2f}%;")
        return " ".join(parts) + f" {clock(time.perf_counter() - self.tic)} elapsed"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()


class RunsProgress:
    """One bar with an ETA over the runs of a study, search or --repeats (the runs' own bars are
    off), or, without a terminal, the ETA appended to each finished run's line; `log` alone
    when `enabled` is false.  ETA: the mean time of the runs finished in this session."""

    def __init__(self, total, desc, log, enabled=True):
        self.total, self.desc, self.log, self.done = total, desc, log, 0
        self.mode = mode() if enabled else None
        self.tic, self.bar = time.perf_counter(), None
        if self.mode in ("widget", "bar"):
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, file=sys.stderr)
            self.log = say                 # lines go above the bar
        # the runs' own progress is off: the compile notice is this bar's (when they run here)
        self.clock = CompileClock(compile_notice).__enter__() if self.mode else None

    def write(self, line):
        """A line for people (between runs)."""
        self.log(line)

    def advance(self, line=None, runs=1):
        """`runs` more runs finished; `line` says how (None: nothing to say but the progress)."""
        self.done += runs
        if self.bar is not None:
            if line is not None:
                self.log(line)
            self.bar.update(runs)
            return
        if self.mode is None:
            if line is not None:
                self.log(line)
            return
        elapsed = time.perf_counter() - self.tic
        left = elapsed / self.done * (self.total - self.done)
        eta = f"{self.done}/{self.total} runs, {clock(elapsed)} elapsed, about {clock(left)} left"
        self.log(f"{line} [{eta}]" if line is not None else f"{self.desc}: {eta}")

    def track(self, finished):
        """Yield the items of `finished`, one finished run each, advancing after each."""
        for item in finished:
            self.advance()
            yield item

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.clock is not None:
            self.clock.__exit__(*exc)
        if self.bar is not None:
            self.bar.close()
