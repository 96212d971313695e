"""Means with SEM error bars against a swept setting, as the mask paper's ablation figures, drawn with
PIL (no matplotlib on a Space by default; the app draws its spectrogram plots the same way).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

INK, GRID, BACKGROUND = (40, 40, 40), (220, 220, 215), (250, 250, 247)
COLOURS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189)]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):
        return ImageFont.load_default()


def _ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not hi > lo:
        lo, hi = lo - 0.5, hi + 0.5
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if raw <= m * step)
    start = math.floor(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 2)]


def error_bar_plot(path: str | Path, x_label: str, xs: Sequence[float],
                   series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str = "") -> Path:
    """One panel per metric: ``series[name] = (means, sems)`` at ``xs``; points joined by lines, SEM
    bars with caps (a NaN SEM draws no bar). Writes a PNG at ``path`` and returns it."""
    panel_w, panel_h, margin = 520, 360, 70
    image = Image.new("RGB", (panel_w * len(series), panel_h + 40), BACKGROUND)
    draw = ImageDraw.Draw(image)
    font, small = _font(16), _font(13)
    if title:
        draw.text((10, 8), title, fill=INK, font=font)
    pad = 0.06 * ((max(xs) - min(xs)) or 1.0)  # keep the end points off the frame
    x_lo, x_hi = min(xs) - pad, max(xs) + pad
    x_span = x_hi - x_lo
    for index, (name, (means, sems)) in enumerate(series.items()):
        left, top = index * panel_w + margin, 40 + 20
        width, height = panel_w - margin - 20, panel_h - 90
        lows = [m - (0 if math.isnan(s) else s) for m, s in zip(means, sems) if not math.isnan(m)]
        highs = [m + (0 if math.isnan(s) else s) for m, s in zip(means, sems) if not math.isnan(m)]
        y_ticks = _ticks(min(lows, default=0.0), max(highs, default=1.0))
        y_lo, y_hi = y_ticks[0], y_ticks[-1]

        def px(x: float, left=left, width=width) -> float:
            return left + (x - x_lo) / x_span * width

        def py(y: float, top=top, height=height, y_lo=y_lo, y_hi=y_hi) -> float:
            return top + height - (y - y_lo) / ((y_hi - y_lo) or 1.0) * height

        for y in y_ticks:
            draw.line([(left, py(y)), (left + width, py(y))], fill=GRID)
            draw.text((left - 8, py(y)), f"{y:g}", fill=INK, font=small, anchor="rm")
        for x in xs:
            draw.text((px(x), top + height + 8), f"{x:g}", fill=INK, font=small, anchor="mt")
        draw.rectangle([left, top, left + width, top + height], outline=INK)
        draw.text((left + width / 2, top + height + 30), x_label, fill=INK, font=font, anchor="mt")
        draw.text((left, top - 6), f"{name} (mean ± SEM)", fill=INK, font=font, anchor="ld")
        colour = COLOURS[index % len(COLOURS)]
        points = [(px(x), py(m)) for x, m in zip(xs, means) if not math.isnan(m)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=2)
        for x, m, s in zip(xs, means, sems):
            if math.isnan(m):
                continue
            if not math.isnan(s) and s > 0:
                draw.line([(px(x), py(m - s)), (px(x), py(m + s))], fill=colour, width=2)
                for y in (m - s, m + s):
                    draw.line([(px(x) - 5, py(y)), (px(x) + 5, py(y))], fill=colour, width=2)
            draw.ellipse([px(x) - 4, py(m) - 4, px(x) + 4, py(m) + 4], fill=colour)
    path = Path(path)
    image.save(path)
    return path
