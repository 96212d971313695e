"""A test sound whose windows all differ, and sound to music run on it the Studio's way (the model half,
then the CPU half), for the tests that compare renders: batching, step counts, host reads."""

from __future__ import annotations

import numpy as np

from pipelines.systems import masked_img2img


def everyday_sound(seconds: float, rate: int = 44100) -> np.ndarray:
    """Noise bursts and a gliding tone, different in every window (so windows are not interchangeable)."""
    rng = np.random.default_rng(3)
    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * (200 + 60 * t) * t)
    return (tone + 0.2 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * 0.7 * t) > 0.3)).astype(np.float32)


def sound_to_music(pipe, audio, settings, **kwargs):
    """The whole sound-to-music path as the Studio runs it: the model half, then the CPU half."""
    return masked_img2img.finish(masked_img2img.render_with_model(pipe, audio, settings, **kwargs), settings)
