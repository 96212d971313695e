"""Synthesise the example sounds in this folder (everyday sounds made from code, no recordings).

    python assets/make_examples.py

Each file is 16-bit mono WAV at 44.1 kHz, deterministic (fixed seeds), written next to this script.
"""

from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 44100
HERE = Path(__file__).resolve().parent


def envelope(n, attack, decay):
    t = np.arange(n) / RATE
    return np.minimum(t / attack, 1.0) * np.exp(-t / decay)


def kettle(seconds=5.0):
    """A whistle that rises in pitch over a bed of hiss, as water comes to the boil."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * RATE)) / RATE
    pitch = 900 + 700 * (t / seconds) ** 2 + 15 * np.sin(2 * np.pi * 5 * t)
    whistle = np.sin(2 * np.pi * np.cumsum(pitch) / RATE) * np.clip((t - 1.0) / 1.5, 0, 1)
    hiss = rng.standard_normal(t.size) * (0.05 + 0.1 * t / seconds)
    return 0.4 * whistle + hiss


def knocks(seconds=5.0):
    """Knocks on a wooden door: short low thumps in an uneven rhythm."""
    rng = np.random.default_rng(2)
    out = np.zeros(int(seconds * RATE))
    for start in (0.3, 0.55, 0.8, 2.0, 2.2, 3.4, 3.6, 3.8, 4.0):
        n = int(0.25 * RATE)
        t = np.arange(n) / RATE
        thump = (np.sin(2 * np.pi * 110 * t) + 0.5 * np.sin(2 * np.pi * 230 * t)) * envelope(n, 0.002, 0.04)
        click = rng.standard_normal(n) * envelope(n, 0.0005, 0.005)
        i = int(start * RATE)
        out[i:i + n] += 0.8 * thump + 0.3 * click
    return out


def rain(seconds=5.0):
    """Rain on a window: soft filtered noise with bright random drops."""
    rng = np.random.default_rng(3)
    n = int(seconds * RATE)
    noise = rng.standard_normal(n)
    bed = np.convolve(noise, np.ones(8) / 8, mode="same") * 0.15
    for start in rng.uniform(0, seconds - 0.05, 60):
        m = int(0.03 * RATE)
        t = np.arange(m) / RATE
        drop = np.sin(2 * np.pi * rng.uniform(2000, 5000) * t) * envelope(m, 0.0005, 0.006)
        i = int(start * RATE)
        bed[i:i + m] += rng.uniform(0.1, 0.4) * drop
    return bed


def birds(seconds=5.0):
    """Birdsong: quick downward chirps in short phrases."""
    rng = np.random.default_rng(4)
    out = np.zeros(int(seconds * RATE))
    for start in np.arange(0.2, seconds - 0.2, 0.35) + rng.uniform(0, 0.1, len(np.arange(0.2, seconds - 0.2, 0.35))):
        m = int(0.12 * RATE)
        t = np.arange(m) / RATE
        f = rng.uniform(3000, 4500) - 12000 * t
        chirp = np.sin(2 * np.pi * np.cumsum(f) / RATE) * envelope(m, 0.005, 0.05)
        i = int(start * RATE)
        out[i:i + m] += 0.5 * chirp
    return out


def groove(seconds=10.0, bpm=120, rate=22050):
    """A music example: kick, snare, hi-hat, a bass line and minor chords at 120 BPM (22.05 kHz)."""
    rng = np.random.default_rng(5)
    n = int(seconds * rate)
    out = np.zeros(n)
    beat = 60.0 / bpm

    def add(start, sound):
        i = int(start * rate)
        out[i:i + len(sound)] += sound[: max(0, n - i)]

    def tone(freq, length, decay, harmonics=(1.0,)):
        t = np.arange(int(length * rate)) / rate
        wave = sum(a * np.sin(2 * np.pi * freq * (k + 1) * t) for k, a in enumerate(harmonics))
        return wave * np.exp(-t / decay) * np.minimum(t / 0.005, 1)

    t_kick = np.arange(int(0.3 * rate)) / rate
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t_kick / 0.03)) * t_kick) * np.exp(-t_kick / 0.12)
    roots = (110.0, 87.31, 130.81, 98.0)  # A2 F2 C3 G2, one bar each
    for i in range(int(seconds / beat)):
        start = i * beat
        add(start, 0.9 * kick)
        if i % 2:
            add(start, 0.4 * rng.standard_normal(int(0.15 * rate)) * np.exp(-np.arange(int(0.15 * rate)) / rate / 0.04))
        for half in (0, 0.5):
            add(start + half * beat, 0.1 * rng.standard_normal(int(0.04 * rate)) * np.exp(-np.arange(int(0.04 * rate)) / rate / 0.01))
        root = roots[(i // 4) % 4]
        add(start, 0.5 * tone(root / 2, beat, 0.3, (1.0, 0.5, 0.25)))
        if i % 4 == 0:
            for ratio in (1.0, 1.2, 1.5):  # minor triad
                add(start, 0.15 * tone(root * 2 * ratio, 4 * beat, 1.2, (1.0, 0.3)))
    return out, rate


def sunset(size=256):
    """A picture: a sun low over the sea, drawn from gradients."""
    from PIL import Image

    y, x = np.mgrid[0:size, 0:size] / size
    sky = np.stack([1.0 - 0.3 * y, 0.45 + 0.3 * y, 0.35 + 0.5 * y], -1)
    sun = np.exp(-(((x - 0.5) ** 2 + (y - 0.55) ** 2) / 0.01))[..., None] * np.array([1.0, 0.8, 0.3])
    sea = (y > 0.6)[..., None] * np.stack([0.1 + 0 * y, 0.25 + 0.1 * np.sin(60 * y), 0.45 + 0 * y], -1)
    picture = np.where((y > 0.6)[..., None], sea, np.clip(sky + sun, 0, 1))
    return Image.fromarray((picture * 255).astype(np.uint8))


def forest(size=256):
    """A picture: dark green fir trees on a pale hillside."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(6)
    image = Image.new("RGB", (size, size), (200, 220, 235))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, size * 0.65, size, size], fill=(150, 180, 120))
    for _ in range(14):
        cx, base, h = rng.uniform(0, size), rng.uniform(size * 0.6, size), rng.uniform(40, 110)
        draw.polygon([(cx, base - h), (cx - h / 4, base), (cx + h / 4, base)], fill=(20, int(rng.uniform(60, 100)), 40))
    return image


def main():
    for name, make in {"kettle": kettle, "knocks": knocks, "rain": rain, "birds": birds, "groove": groove}.items():
        audio = make()
        audio, rate = audio if isinstance(audio, tuple) else (audio, RATE)
        audio = 0.8 * audio / np.max(np.abs(audio))
        sf.write(HERE / f"{name}.wav", audio.astype(np.float32), rate, subtype="PCM_16")
        print(f"wrote {name}.wav ({audio.size / rate:.1f} s)")
    for name, make in {"sunset": sunset, "forest": forest}.items():
        make().save(HERE / f"{name}.png")
        print(f"wrote {name}.png")


if __name__ == "__main__":
    main()
