"""Toy data and flags for the training recipes' tests (tests/test_training_*.py); conftest's ``clips``
and ``frames`` fixtures are made with these.

``write_tone``: a 2.5 s tone with a tremolo and a third harmonic (mono 44.1 kHz WAV); ``write_clips``:
three of them, one 'style'; ``write_frames``: an imagefolder of three pictures with captions;
``base_flags``: the flags every recipe takes, on the tiny profile, without checkpoints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 44100


def write_tone(path: Path, freq: float, seconds: float = 2.5, rate: int = RATE) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * freq * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.05 * np.sin(2 * np.pi * 3 * freq * t)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, wave.astype(np.float32), rate)
    return path


def write_clips(folder: Path) -> Path:
    """Three synthesised 2.5 s clips in one 'style' (220, 330 and 440 Hz): ``tone0.wav`` .. ``tone2.wav``."""
    for i, freq in enumerate((220.0, 330.0, 440.0)):
        write_tone(folder / f"tone{i}.wav", freq)
    return folder


def write_frames(folder: Path) -> Path:
    """An imagefolder: three small pictures (96x80) and their captions in metadata.jsonl."""
    from PIL import Image

    rows = []
    for i, (caption, colour) in enumerate((("a red square", (255, 0, 0)), ("a blue square", (0, 0, 255)),
                                           ("a green field", (0, 200, 0)))):
        pixels = np.zeros((80, 96, 3), np.uint8)
        pixels[:] = colour
        pixels[20:60, 30:70] = 255 - np.array(colour)
        Image.fromarray(pixels).save(folder / f"{i}.png")
        rows.append({"file_name": f"{i}.png", "text": caption})
    (folder / "metadata.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    return folder


def base_flags(data, output, steps=2, *extra):
    return ["--data", str(data), "--output", str(output), "--max-steps", str(steps), "--profile", "tiny",
            "--checkpoint-every", "0", *map(str, extra)]
