"""The small real dataset shipped inside the package, so training works offline on a fresh machine.

A stratified, seeded subset of Fashion-MNIST (Zalando Research, MIT licence; see sample/README.md),
built by `python -m fastmlp.data.make_sample`.
"""
import dataclasses
from pathlib import Path

from .arrays import RawData, load_npz
from .errors import DataError

SAMPLE_FILE = Path(__file__).parent / "sample" / "fashion-mnist-sample.npz"


def load_sample() -> RawData:
    if not SAMPLE_FILE.is_file():
        raise DataError(
            f"{SAMPLE_FILE}: the embedded sample is missing from this installation; reinstall fastmlp"
        )
    raw = load_npz(SAMPLE_FILE)
    return dataclasses.replace(
        raw, name="sample",
        source=f"embedded Fashion-MNIST sample ({len(raw.y_train)} training + {len(raw.y_test)} test images, "
               f"Zalando Research, MIT licence) from {SAMPLE_FILE}",
    )
