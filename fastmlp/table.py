"""The one table formatter. Every table fastmlp prints or writes goes through `format_table`: Markdown
for files (results.md, summary.md, gradients.md) and aligned text for a terminal."""
import re

STYLES = ("markdown", "text")
# A cell that reads as a number (signs, %, ±, exponents, "x" of a ratio) is right-aligned, as people
# compare numbers by their last digits; words stay left-aligned.
_NUMERIC = re.compile(r"^[-+]?(\d[\d,]*\.?\d*|\.\d+)(e[-+]?\d+)?\s*(%|x|s|ms)?(\s*±\s*[\d.e+-]+%?)?$")
# what stands in a numeric column for a number there is not (a study's diverged run has no scores);
# it does not turn the column's alignment to the left
_NO_NUMBER = ("-", "", "diverged")


def format_table(header, rows, style="markdown"):
    """`header`: column names; `rows`: sequences of cells (formatted strings, or anything str() reads
    well). style "markdown" gives a GitHub table, "text" columns padded to align in a monospace font."""
    if style not in STYLES:
        raise ValueError(f"style must be one of {', '.join(STYLES)}; got {style!r}.")
    header = [str(h) for h in header]
    rows = [[str(c) for c in row] for row in rows]
    for i, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"row {i} has {len(row)} cells but the header has {len(header)} columns: {row}")
    right = [bool(rows) and all(_NUMERIC.match(r[j]) or r[j] in _NO_NUMBER for r in rows)
             for j in range(len(header))]
    if style == "markdown":
        rule = "|" + "|".join("---:" if r else "---" for r in right) + "|"
        return "\n".join(["| " + " | ".join(header) + " |", rule] +
                         ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(c) for c in column) for column in zip(header, *rows)]
    lines = []
    for row in [header, *rows]:
        cells = [c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
