"""The one table formatter (fastmlp/table.py) in both styles."""
import pytest

from fastmlp.table import format_table


def test_markdown_right_aligns_numeric_columns_only():
    text = format_table(["net", "acc", "runs"], [["A", "45.10%", 3], ["B", "44.00% ± 0.50", "2 (1 diverged)"]])
    assert text.splitlines() == ["| net | acc | runs |", "|---|---:|---|",
                                 "| A | 45.10% | 3 |", "| B | 44.00% ± 0.50 | 2 (1 diverged) |"]


def test_a_diverged_cell_keeps_its_numeric_column_right_aligned():
    # a study row whose runs all diverged left every score column of the table left-aligned
    text = format_table(["eta", "val accuracy"], [["0.09", "34.04%"], ["0.5", "diverged"]])
    assert text.splitlines()[1] == "|---:|---:|"


def test_text_pads_columns_to_one_width():
    lines = format_table(["", "loss", "accuracy"], [["train", "1.2345", "45.00%"], ["test", "-", "-"]],
                         "text").splitlines()
    assert lines == ["         loss  accuracy", "train  1.2345    45.00%", "test        -         -"]


def test_errors_name_the_rule():
    with pytest.raises(ValueError, match="style must be one of markdown, text; got 'html'"):
        format_table(["a"], [], "html")
    with pytest.raises(ValueError, match="row 0 has 2 cells but the header has 1 columns"):
        format_table(["a"], [["1", "2"]])
