from __future__ import annotations

from closeloop.analytics import svg


def test_a_missing_value_breaks_the_line_instead_of_drawing_zero():
    chart = svg.lines("Backlog", ["a", "b", "c", "d"], {"backlog": [4, 8, None, None], "forecast": [None, None, 8, 9]})
    assert chart.count("<polyline") == 2
    assert ",184.0" not in chart  # the baseline (value 0) is never reached: no point was drawn for a gap


def test_labels_are_escaped():
    chart = svg.bars("<script>", ["<b>x</b>"], {"n": [1]})
    assert "<script>" not in chart and "&lt;b&gt;" in chart
