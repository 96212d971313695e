"""The original systems' own files (found by conftest's ``real_data``, read in place, never copied) through the API."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from PIL import Image

from scripts.real_data import MANIFEST

SOUNDS = sorted(Path(f.path) for f in MANIFEST if f.path.endswith(".wav"))

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("sound", SOUNDS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_real_sound_describes_and_makes_a_spectrogram_and_mask(real_data, client, sound, capsys):
    path = real_data / sound
    genres, emotions, tempo, sentence = client.predict(handle_file(str(path)), api_name="/describe_music")
    png, _plot = client.predict(handle_file(str(path)), "riffusion", False, api_name="/audio_to_spectrogram")
    source, mask = client.predict(handle_file(str(path)), 1.0, 0.05, 200, 40, "paper", api_name="/preview_mask")
    seconds = sf.info(str(path)).duration
    assert Image.open(png).height == 512 and Image.open(source).size == Image.open(mask).size
    assert tempo == "no steady beat" or tempo.endswith(")")
    kept = float(np.mean(np.asarray(Image.open(mask).convert("L")) > 0))
    with capsys.disabled():
        print(f"\n[real] {path.parent.name}/{path.name}: {seconds:.2f} s, tempo {tempo}, "
              f"spectrogram {Image.open(png).size}, mask nonzero {kept:.1%}")
