"""Our spectrogram PNGs open in riffusion's reader, and riffusion's / MusicTI's images decode at
their own sample rate and width (issue 10, item 3; the originals' files through conftest's ``real_data``)."""

import enum

import numpy as np
import pytest
import soundfile as sf
from gradio_client import handle_file
from PIL import Image

from pipelines.signal import spectrogram



class RiffusionExifTags(enum.Enum):
    """riffusion's SpectrogramParams.ExifTags as its reader had it (no TRIPLE_RES_MONO)."""

    SAMPLE_RATE = 11000
    STEREO = 11005
    STEP_SIZE_MS = 11010
    WINDOW_DURATION_MS = 11020
    PADDED_DURATION_MS = 11030
    NUM_FREQUENCIES = 11040
    MIN_FREQUENCY = 11050
    MAX_FREQUENCY = 11060
    POWER_FOR_IMAGE = 11070
    MAX_VALUE = 11080


def riffusion_exif_from_image(image):
    """riffusion.util.image_util.exif_from_image: every tag through the enum (unknown ones raise)."""
    exif = image.getexif()
    return {RiffusionExifTags(key).name: value for key, value in exif.items()}


def riffusion_spectrogram_from_image(image, power, stereo, max_value):
    """riffusion.util.image_util.spectrogram_from_image."""
    if image.mode in ("P", "L"):
        image = image.convert("RGB")
    data = np.array(image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)).transpose(2, 0, 1)
    data = data[[1, 2]] if stereo else data[0:1]
    return np.power((255 - data.astype(np.float32)) / 255, 1 / power) * max_value


@pytest.mark.parametrize("stereo", [False, True])
def test_our_pngs_open_in_riffusions_reader(tmp_path, stereo):
    t = np.arange(44100) / 44100
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    audio = np.stack([tone, tone * 0.3]) if stereo else tone
    image = spectrogram.audio_to_image(audio)
    spectrogram.save_image(image, tmp_path / "ours.png")
    reopened = Image.open(tmp_path / "ours.png")
    tags = riffusion_exif_from_image(reopened)  # raised KeyError... ValueError on tag 11007 before
    assert tags["SAMPLE_RATE"] == 44100 and tags["STEP_SIZE_MS"] == 10 and bool(tags["STEREO"]) == stereo
    mel = riffusion_spectrogram_from_image(reopened, tags["POWER_FOR_IMAGE"], bool(tags["STEREO"]), tags["MAX_VALUE"])
    ours = spectrogram.image_to_mel(spectrogram.load_image(tmp_path / "ours.png")).numpy()
    assert mel.shape == ours.shape
    np.testing.assert_allclose(mel, ours, rtol=1e-4, atol=1e-3 * float(ours.max()))


def test_a_copied_foreign_exif_tag_is_not_written_into_a_spectrogram(tmp_path):
    image = spectrogram.audio_to_image(np.zeros(4410, np.float32) + 0.1)
    image.getexif()[11007] = 0  # riffusion-hobby's triple-res tag, e.g. copied from a source image
    spectrogram.save_image(image, tmp_path / "copied.png")
    assert 11007 not in Image.open(tmp_path / "copied.png").getexif()
    assert spectrogram.read_metadata(Image.open(tmp_path / "copied.png"))["source"] == "png"


@pytest.mark.slow
@pytest.mark.parametrize("name, rate, width", [("violin1.png", 48000, 502), ("color1.png", 44100, 502),
                                               ("accordion.png", 24000, 500),
                                               ("generated_accordion_chime_0.5_violin1.png", 44100, 512)])
def test_musictis_images_decode_at_their_own_rate_and_width_through_the_api(real_data, client, name, rate, width):
    wav, _plot = client.predict(handle_file(str(real_data / "musicti" / "images" / name)), "auto", api_name="/spectrogram_to_audio")
    samples, sample_rate = sf.read(wav)
    assert sample_rate == rate
    assert abs(len(samples) / sample_rate - width * 0.010) < 0.002  # 10 ms per column
    assert np.abs(samples).max() > 0.1
