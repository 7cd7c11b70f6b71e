"""`--tensorboard DIR`: a run's curves as TensorBoard event files, for `tensorboard --logdir DIR`.

Each run writes into DIR/<name of its run folder>/, so several runs logged to one DIR (or the seeds
of --repeats, the trials of a study or a search) show as separate, comparable runs in TensorBoard.
Scalars, x-axis the update step:
- per evaluation (each epoch's end, and every --eval-every steps): loss/train, loss/val, cost/train,
  cost/val, accuracy/train and accuracy/val (in %), as history.csv has them, and the same for
  test with --eval-test;
- per step: learning_rate and batch_loss (steps.csv), at most MAX_STEP_POINTS points a run: a
  point every `stride` steps, batch_loss the mean over those steps.  An event costs ~0.15 ms to
  write (TensorBoard's writer checksums it in Python), as much as a training step of the
  study's network, and TensorBoard draws at most 1,000 points of a curve anyway.
Events are flushed to disk at every evaluation (the writer's flush waits for them), so a
TensorBoard open on DIR follows the run live and an interrupted run keeps what it logged.

The writer is TensorBoard's own, the one torch.utils.tensorboard uses: pip install
"fastmlp[tensorboard]" installs it with TensorBoard, which views the files.
"""
import math
import time
from pathlib import Path

import numpy as np

from .extras import require
from .history import EVAL_COLUMNS

MAX_STEP_POINTS = 1000


def loggers(config, out):
    """The Trainer's on_evaluate callbacks that config asks for: [] or a TensorBoardLog."""
    if config.tensorboard is None:
        return []
    return [TensorBoardLog(config.tensorboard, Path(out).resolve().name)]


class TensorBoardLog:
    """Called by the Trainer after each evaluation (Trainer(on_evaluate=[...])); writes the scalars
    measured since the previous evaluation into logdir/run/."""

    def __init__(self, logdir, run):
        require("tensorboard", "tensorboard", "--tensorboard")
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
        self._Event, self._Summary, self._EventFileWriter = Event, Summary, EventFileWriter
        self.path = Path(logdir) / run
        self.writer = None            # opened at the first evaluation: no empty run for a failed start

    def __call__(self, trainer):
        h = trainer.history_
        if self.writer is None:       # a file of its own per session (named by time, host, process)
            self.writer = self._EventFileWriter(str(self.path))
        row = dict(zip(EVAL_COLUMNS, h.evals[-1]))
        step, total = int(row["step"]), len(h.eta)
        # the steps since the previous evaluation (from the restored history after --resume)
        start = int(h.evals[-2][0]) if len(h.evals) > 1 else step
        stride = max(1, math.ceil(total / MAX_STEP_POINTS))
        for t in range(start, step):
            if (t + 1) % stride == 0 or t + 1 == total:
                first = (t // stride) * stride
                self._write(t, {"learning_rate": h.eta[t], "batch_loss": np.mean(h.batch_loss[first:t + 1])})
        scores = {f"{what}/{part}": scale * row[f"{part}_{what}"] for part in ("train", "val", "test")
                  for what, scale in (("loss", 1), ("cost", 1), ("accuracy", 100))}
        self._write(step, {tag: v for tag, v in scores.items() if math.isfinite(v)})  # NaN: not measured
        if step == total:
            self.close()
        else:
            self.writer.flush()

    def _write(self, step, scalars):
        """One event at `step` holding the scalars {tag: value}."""
        values = [self._Summary.Value(tag=tag, simple_value=float(v)) for tag, v in scalars.items()]
        self.writer.add_event(self._Event(step=step, wall_time=time.time(), summary=self._Summary(value=values)))

    def close(self):
        if self.writer is not None:
            self.writer.close()
            self.writer = None
