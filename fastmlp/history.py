"""What a training run measured, and how history.csv and steps.csv spell it: `History` holds the
learning rate and batch loss of every update step and a row of EVAL_COLUMNS per evaluation.

It is apart from fastmlp/train.py, the loop that fills it, because many more modules read a
History than run the loop (run folders, checkpoints, plots, early stopping, TensorBoard, studies),
and a reader of the loop need not read the file formats.  fastmlp.train imports these names, so
`from fastmlp.train import History, EVAL_COLUMNS` works as before.
"""
import math

import numpy as np

EVAL_COLUMNS = ("step", "epoch", "train_loss", "train_cost", "train_accuracy",
                "val_loss", "val_cost", "val_accuracy",
                "test_loss", "test_cost", "test_accuracy")    # NaN unless eval_test
TEST_COLUMNS = EVAL_COLUMNS[8:]


class History:
    """What a run measured: `eta` and `batch_loss` per update step, `evals` per evaluation."""

    def __init__(self, eta, batch_loss=None, evals=()):
        self.eta = np.asarray(eta, np.float64)                  # (T,) learning rate of step t
        self.batch_loss = (np.full(len(self.eta), np.nan) if batch_loss is None
                           else np.array(batch_loss, np.float64))   # (T,) loss of batch t, NaN: not run
        # rows of EVAL_COLUMNS; a row of a file written before the test columns gets NaN there
        self.evals = [list(map(float, row)) + [math.nan] * (len(EVAL_COLUMNS) - len(row)) for row in evals]

    def truncate(self, steps):
        """Keep the first `steps` steps: a run that stopped early took no more."""
        self.eta, self.batch_loss = self.eta[:steps], self.batch_loss[:steps]

    def row(self, k):
        """Evaluation k as {column: value}."""
        return dict(zip(EVAL_COLUMNS, self.evals[k]))

    def column(self, name):
        return np.array([row[EVAL_COLUMNS.index(name)] for row in self.evals])

    def to_arrays(self):
        evals = np.array(self.evals, np.float64).reshape(-1, len(EVAL_COLUMNS))
        return {"eta": self.eta, "batch_loss": self.batch_loss, "evals": evals}

    @classmethod
    def from_arrays(cls, arrays):
        return cls(arrays["eta"], arrays["batch_loss"], arrays["evals"])

    def measured_test(self):
        """True when the run measured the test set at its evaluations (eval_test)."""
        return any(not math.isnan(row[-1]) for row in self.evals)

    def csv_width(self):
        """Columns history.csv holds: the test_* ones only when they were measured."""
        return len(EVAL_COLUMNS) if self.measured_test() else len(EVAL_COLUMNS) - len(TEST_COLUMNS)

    def csv(self):
        """history.csv: a row per evaluation; the test_* columns only when they were measured,
        so that a run without eval_test shows no test numbers to choose settings by."""
        width = self.csv_width()
        return self.csv_header(width) + "".join(self.csv_line(r, width) for r in self.evals)

    @staticmethod
    def csv_header(width):
        return ",".join(EVAL_COLUMNS[:width]) + "\n"

    @staticmethod
    def csv_line(row, width):
        """One evaluation's line of history.csv, its first `width` columns."""
        return f"{int(row[0])},{row[1]:.6g}," + ",".join(f"{v:.8g}" for v in row[2:width]) + "\n"

    def steps_csv(self):
        lines = ["step,eta,batch_loss"]
        lines += [f"{t},{e:.8g},{b:.8g}" for t, (e, b) in enumerate(zip(self.eta, self.batch_loss))]
        return "\n".join(lines) + "\n"
