"""Tables as the studies write them: markdown for people, JSON and CSV for programs."""
import csv
import io
import json
from pathlib import Path

from ..checkpoint import atomic_write_text


def markdown(header, rows):
    """A markdown table of `rows` (sequences of cells, already formatted)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path, value):
    atomic_write_text(Path(path), json.dumps(value, indent=2, default=_plain) + "\n")


def write_csv(path, records):
    """records: dicts with the same keys, one CSV row each."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(Path(path), buffer.getvalue())


def _plain(value):
    """JSON for tuples-in-numpy and numpy scalars."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")
