"""`fastmlp train` from a notebook kernel, as a user runs it there: the Python API with progress
(tqdm.auto's widget bar, or a line per epoch and one hint when ipywidgets is missing) and
`!fastmlp train` (a pseudo-terminal of 80 columns: the text bar, each frame within them).

It executes a real notebook with nbclient in a fresh ipykernel, so it needs ipykernel, nbclient,
nbformat and ipywidgets (pip install -e ".[notebook]"); they are not in the test extra, being a
Jupyter stack of some twenty packages for this one file, and it skips without them.
"""
import importlib.util
import re

import pytest

MISSING = [m for m in ("nbclient", "nbformat", "ipykernel", "ipywidgets") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(bool(MISSING), reason=f"needs {', '.join(MISSING)} to run a notebook: "
                                                       f'pip install -e ".[notebook]"')

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
NOTICE = "Compiling fastmlp's kernels (first run only"
HINT = "Progress is shown as lines: ipywidgets, which draws progress bars in a notebook, is not installed"
EPOCH_LINE = r"epoch [12]/2, step \d+/40: train loss [\d.]+ cost [\d.]+ accuracy [\d.]+%; val loss .* elapsed"
TINY = dict(dataset="sample", n_train=1000, batch=50, sizes="auto-16-auto", ns_epochs=1, cycles=1)
FLAGS = "--dataset sample --n-train 1000 --batch 50 --sizes auto-16-auto --ns-epochs 1 --cycles 1"

CELLS = [
    # ipywidgets hidden, as if not installed: tqdm.auto decides when first imported, which this is
    "import sys\nsys.modules['ipywidgets'] = None\nfrom fastmlp import TrainConfig\nfrom fastmlp.run import train",
    f"train(TrainConfig(**{TINY!r}, out='runs/lines'), progress=True)",
    # ipywidgets back, tqdm.auto imported afresh: the widget bar
    "for name in ('ipywidgets', 'tqdm.auto', 'tqdm.autonotebook', 'tqdm.notebook'):\n"
    "    sys.modules.pop(name, None)",
    f"train(TrainConfig(**{TINY!r}, out='runs/widget'), progress=True)",
    f"!{{sys.executable}} -m fastmlp train {FLAGS} --out runs/cli",
]


def _streams(cell, name):
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == name)


@pytest.fixture(scope="module")
def notebook(tmp_path_factory):
    import nbformat
    from nbclient import NotebookClient
    folder = tmp_path_factory.mktemp("notebook")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    # the kernel runs this interpreter (jupyter_client puts sys.executable for "python")
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


def test_without_ipywidgets_a_notebook_gets_one_hint_and_a_line_per_epoch(notebook):
    err = _streams(notebook.cells[1], "stderr")
    lines = [line for line in err.splitlines() if not line.startswith(NOTICE)]
    assert lines[0].startswith(HINT) and "\r" not in err, err
    assert len(lines) == 3 and all(re.fullmatch(EPOCH_LINE, line) for line in lines[1:]), err


def test_with_ipywidgets_a_notebook_gets_one_widget_bar_that_ends_at_the_last_epoch(notebook):
    cell = notebook.cells[3]
    views = [o for o in cell.outputs if o["output_type"] == "display_data" and WIDGET_VIEW in o["data"]]
    err = _streams(cell, "stderr")
    assert len(views) == 1 and all(line.startswith(NOTICE) for line in err.splitlines()), (cell.outputs, err)
    # the widgets' last state, saved by nbclient: the bar's text left and right of the bar itself
    state = notebook.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    texts = [m["state"]["value"].replace("\u2007", " ") for m in state.values() if m["model_name"] == "HTMLModel"]
    assert "epoch 2/2: 100%" in texts and any(re.search(r"loss [\d.]+, train [\d.]+%, val [\d.]+%", t)
                                              for t in texts), texts


def test_fastmlp_train_in_a_notebook_draws_its_text_bar_within_80_columns(notebook):
    out = _streams(notebook.cells[4], "stdout")      # `!` runs it in a pseudo-terminal: one stream
    frames = [f.rstrip("\n") for f in out.split("\r") if f.strip()]
    bars = [f for f in frames if f.startswith("epoch ")]
    assert bars and all(len(f) <= 80 for f in bars), frames
    assert re.fullmatch(r"epoch 2/2: 100%\|█+\| [\d:]+<[\d:]+, loss [\d.]+, train [\d.]+%, val [\d.]+%", bars[-1])
    assert re.search(r"test +[\d.]+ +[\d.]+ +[\d.]+%", out) and "Wrote runs/cli/" in out, out
