"""A labelled view of a spectrogram image: time axis in seconds, frequency axis in Hz.

Drawn with PIL alone (no matplotlib on a Space by default). Rows of a mel image are evenly spaced
in mel, so the Hz ticks land unevenly, which is the point: they show where the mel scale spends
its resolution. Low frequencies are always drawn at the bottom and loud is dark, whatever the
preset's storage layout.
"""

from __future__ import annotations

import typing as T

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.errors import InputError
from pipelines.signal.spectrogram import SpectrogramParams, get_params, image_to_mel, read_metadata

BACKGROUND = (250, 250, 247)
INK = (40, 40, 40)
HZ_TICKS = (0, 50, 100, 200, 300, 500, 1000, 2000, 3000, 5000, 7000, 10000, 15000, 20000)
SECOND_STEPS = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError):
        return ImageFont.load_default()


def mel_row_frequencies(params: SpectrogramParams) -> np.ndarray:
    """Centre frequency (Hz) of each mel row, lowest first."""
    import librosa

    return librosa.mel_frequencies(params.n_mels + 2, fmin=params.f_min, fmax=params.f_max, htk=params.mel_htk)[1:-1]


def _display_channels(image: Image.Image, params: SpectrogramParams) -> T.List[np.ndarray]:
    """uint8 (rows, cols) per channel, low frequencies last row, loud dark."""
    mel = image_to_mel(image, params, max_value=1.0).numpy()  # relative scale is all a plot needs
    out = []
    for ch in mel:
        if params.image_scale == "power":
            level = np.power(np.clip(ch, 0, 1), params.power_for_image)
        else:
            db = 10 * np.log10(np.maximum(ch, 1e-10))
            level = np.clip((db + params.top_db) / params.top_db, 0, 1)
        out.append((255 - np.round(level * 255)).astype(np.uint8)[::-1])
    return out


def plot_spectrogram(image: Image.Image, params: T.Union[str, SpectrogramParams, None] = None,
                     title: T.Optional[str] = None) -> Image.Image:
    """RGB figure of a spectrogram image with labelled axes (one panel per channel)."""
    if not isinstance(image, Image.Image):
        raise InputError("Expected a PIL image of a spectrogram")
    meta = read_metadata(image)
    params = get_params(params if params is not None else meta["params"])
    panels = _display_channels(image, params)
    rows, cols = panels[0].shape
    # small images (audio-diffusion's 256 px) are enlarged so the labels have room
    scale = max(1, 512 // max(rows, 1))
    ph, pw = rows * scale, cols * scale

    font, small = _font(14), _font(12)
    left, right, top, bottom, gap = 78, 20, 34, 48, 14
    n = len(panels)
    width = left + pw + right
    height = top + n * ph + (n - 1) * gap + bottom
    fig = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(fig)

    seconds = cols * params.hop_length / params.sample_rate
    draw.text((left, 8), title or f"{params.name} spectrogram, {seconds:.2f} s, {params.sample_rate} Hz",
              fill=INK, font=font)

    row_hz = mel_row_frequencies(params)
    ticks_hz = [f for f in HZ_TICKS if row_hz[0] <= f <= row_hz[-1] or f == 0 and params.f_min == 0]
    step = next((s for s in SECOND_STEPS if seconds / s <= 8), SECOND_STEPS[-1])
    names = ["L", "R"] if n == 2 else [""]

    for i, panel in enumerate(panels):
        y0 = top + i * (ph + gap)
        fig.paste(Image.fromarray(panel, "L").resize((pw, ph), Image.Resampling.NEAREST).convert("RGB"), (left, y0))
        draw.rectangle([left - 1, y0 - 1, left + pw, y0 + ph], outline=INK)
        if names[i]:
            draw.text((left + 6, y0 + 4), names[i], fill=(200, 30, 30), font=font)
        last_label_y = None
        for hz in ticks_hz:
            # fractional row of this frequency (rows are mel-spaced), drawn from the bottom
            row = float(np.interp(hz, row_hz, np.arange(rows)))
            y = y0 + ph - (row + 0.5) * scale
            if last_label_y is not None and last_label_y - y < 16:
                continue  # keep labels from overlapping where the scale is crowded
            last_label_y = y
            draw.line([left - 5, y, left - 1, y], fill=INK)
            label = f"{hz / 1000:g}k" if hz >= 1000 else f"{hz:g}"
            tw = draw.textlength(label, font=small)
            draw.text((left - 8 - tw, y - 7), label, fill=INK, font=small)
        draw.text((6, y0 + ph // 2 - 7), "Hz", fill=INK, font=small)

    axis_y = top + n * ph + (n - 1) * gap
    t = 0.0
    while t <= seconds + 1e-9:
        x = left + t / seconds * pw if seconds > 0 else left
        draw.line([x, axis_y, x, axis_y + 5], fill=INK)
        label = f"{t:g}"
        draw.text((x - draw.textlength(label, font=small) / 2, axis_y + 7), label, fill=INK, font=small)
        t = round(t + step, 6)
    draw.text((left + pw / 2 - 30, axis_y + 26), "time (s)", fill=INK, font=small)
    return fig
