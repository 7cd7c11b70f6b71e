"""A JSON-lines file of records that a crash cannot corrupt (a search's trials.jsonl).

append() writes each record as one line in one write(2) on an O_APPEND file and fsyncs it, so a
crash or a full disk leaves at most a torn last line: never half a record in the middle.  read()
cuts a torn last line off with a warning (the record it held is simply made again: a search
reruns that trial, reusing its finished runs), and refuses any other unreadable line, naming
the file and the line, since that is damage a crash cannot have done.
"""
import errno
import json
import os
from pathlib import Path

from .. import jsonio

UNREADABLE = (ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)


def append(path, record):
    """Add `record` as the last line of `path` (strict JSON: a NaN is refused, see fastmlp.jsonio)."""
    line = (jsonio.dumps(record, str(path)) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        try:
            written = os.write(fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} (wrote {written} of {len(line)} bytes "
                                            f"of a record)", str(path))
            os.fsync(fd)
        except OSError:
            os.ftruncate(fd, size)     # take the part-line back: the file still ends at a record's end
            raise
    finally:
        os.close(fd)


def read(path, check, log):
    """The records of `path` ([] if there is none), each as check(record) returns it; check raises
    one of UNREADABLE with the reason for a record it cannot use.  log gets the warning about a
    torn last line, which is removed from the file."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    *lines, tail = data.split(b"\n")      # tail: b"" when the file ends with its newline
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append(check(json.loads(line)))
            except UNREADABLE as e:
                raise ValueError(f"{path} line {number} is not a readable record ({type(e).__name__}: "
                                 f"{_short(e)}); only a torn last line is repaired on its own: fix or delete "
                                 f"line {number}, or choose another --out.") from None
    if tail.strip():
        try:
            records.append(check(json.loads(tail)))
            with open(path, "ab") as f:       # a whole record that lost its newline: keep it
                f.write(b"\n")
        except UNREADABLE:
            log(f"warning: {path} line {len(lines) + 1} is cut short ({len(tail)} bytes, no newline: a write "
                f"was interrupted); removed it, so its trial runs again.")
            os.truncate(path, len(data) - len(tail))
    return records


def _short(error):
    text = " ".join(str(error).split())
    return text if len(text) <= 200 else text[:200] + "..."
