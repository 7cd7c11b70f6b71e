"""The one writer of JSON: metrics.json, the studies' tables and records.

JSON has no NaN or Infinity (Python's json writes them anyway, and strict readers such as
JavaScript's JSON.parse or jq refuse the file), so nothing is written with them: a value that
can be undefined is written as null with its reason next to it, and a NaN that reaches this
writer is a bug, refused with the file and the key named rather than written.
"""
import json
import math
from pathlib import Path


def dumps(value, where="JSON", indent=None):
    """value as strict JSON (numpy scalars and arrays as plain numbers and lists); `where` names
    the destination in the error a NaN or infinity raises."""
    try:
        return json.dumps(value, indent=indent, allow_nan=False, default=_plain)
    except ValueError:
        key, bad = _find_nonfinite(value)
        raise ValueError(f"{where}: {key} is {bad}, and JSON has no NaN or Infinity; nothing was "
                         f"written. This is a fastmlp bug: please report it with the command.") from None


def write(path, value):
    """Write value to path as indented strict JSON, atomically (checkpoint.atomic_write)."""
    from .checkpoint import atomic_write_text    # checkpoint imports network: only when writing
    atomic_write_text(Path(path), dumps(value, str(path), indent=2) + "\n")


def _plain(value):
    """JSON for numpy scalars and arrays."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _find_nonfinite(value, key="the value"):
    """(where, value) of the first NaN or infinity inside value; (key, '?') if none is found."""
    value = _plain(value) if hasattr(value, "tolist") else value
    if isinstance(value, float) and not math.isfinite(value):
        return key, value
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, (list, tuple)) else ()
    for k, v in items:
        found = _find_nonfinite(v, f"{key}[{k!r}]" if key != "the value" else repr(k))
        if found[1] != "?":
            return found
    return key, "?"
