"""Server-rendered SVG charts: no JavaScript, every label escaped."""

from __future__ import annotations

from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

COLOURS = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f"]
WIDTH, HEIGHT, PAD = 640, 220, 36


def _scale(values: Sequence[Sequence[float | None]]) -> float:
    top = max((v for series in values for v in series if v is not None), default=0.0)
    return float(top) or 1.0


def _frame(title: str, body: list[str], legend: Sequence[str], top: float) -> SafeString:
    keys = "".join(
        f'<rect x="{PAD + i * 150}" y="4" width="10" height="10" fill="{COLOURS[i % len(COLOURS)]}"/>'
        f'<text x="{PAD + 14 + i * 150}" y="13" font-size="11">{escape(name)}</text>'
        for i, name in enumerate(legend))
    axis = (f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - 8}" y2="{HEIGHT - PAD}" stroke="#999"/>'
            f'<text x="2" y="{PAD - 4}" font-size="10">{top:g}</text>'
            f'<text x="2" y="{HEIGHT - PAD}" font-size="10">0</text>')
    return mark_safe(  # noqa: S308 - every text node above and below is escaped
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
        f'height="{HEIGHT}"><title>{escape(title)}</title>{keys}{axis}{"".join(body)}</svg>')


def bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> SafeString:
    """Grouped bars, one group per label."""
    top = _scale(list(series.values()))
    n, k = max(len(labels), 1), max(len(series), 1)
    slot = (WIDTH - PAD - 8) / n
    bar = max(1.0, slot * 0.8 / k)
    body = []
    for j, values in enumerate(series.values()):
        for i, value in enumerate(values):
            h = (HEIGHT - 2 * PAD) * (value or 0) / top
            x = PAD + i * slot + j * bar
            body.append(f'<rect x="{x:.1f}" y="{HEIGHT - PAD - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                        f'fill="{COLOURS[j % len(COLOURS)]}"><title>{escape(labels[i])}: {value}</title></rect>')
    body += _labels(labels, slot)
    return _frame(title, body, list(series), top)


def lines(title: str, labels: Sequence[str], series: dict[str, Sequence[float | None]]) -> SafeString:
    """One polyline per series over evenly spaced labels."""
    top = _scale(list(series.values()))
    n = max(len(labels) - 1, 1)
    step = (WIDTH - PAD - 8) / n
    body = []
    for j, values in enumerate(series.values()):
        for run in _runs(values):  # a missing value breaks the line instead of dropping it to zero
            points = " ".join(f"{PAD + i * step:.1f},{HEIGHT - PAD - (HEIGHT - 2 * PAD) * v / top:.1f}"
                              for i, v in run)
            body.append(f'<polyline fill="none" stroke="{COLOURS[j % len(COLOURS)]}" stroke-width="2" '
                        f'points="{points}"/>')
    body += _labels(labels, step, every=max(1, len(labels) // 7))
    return _frame(title, body, list(series), top)


def _runs(values: Sequence[float | None]) -> list[list[tuple[int, float]]]:
    runs: list[list[tuple[int, float]]] = [[]]
    for i, v in enumerate(values):
        if v is None:
            runs.append([])
        else:
            runs[-1].append((i, float(v)))
    return [run for run in runs if run]


def _labels(labels: Sequence[str], slot: float, every: int = 1) -> list[str]:
    return [f'<text x="{PAD + i * slot:.1f}" y="{HEIGHT - PAD + 14}" font-size="10">{escape(label[:14])}</text>'
            for i, label in enumerate(labels) if i % every == 0]
