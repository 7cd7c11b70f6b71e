"""Tables as the studies write them: markdown for people, JSON and CSV for programs."""
import csv
import io
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..table import format_table
from ..jsonio import write as write_json  # noqa: F401  (the studies import it from here)


def markdown(header, rows):
    """A markdown table of `rows` (sequences of cells, already formatted)."""
    return format_table(header, rows, "markdown")


def write_csv(path, records):
    """records: dicts with the same keys, one CSV row each."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(records[0]) if records else [], lineterminator="\n")
    writer.writeheader()
    writer.writerows(records)
    atomic_write_text(Path(path), buffer.getvalue())
