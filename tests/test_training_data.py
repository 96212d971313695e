"""The recipes' data: folders of audio cut into spectrogram images with the app's own codec
(``training.data``), the LoRA's imagefolder, and the clear errors a bad folder or flag gets."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from core.errors import InputError
from training_toys import RATE, base_flags, write_tone


# -- clear errors -------------------------------------------------------------------------------------------


def test_an_empty_data_folder_is_a_clear_error(tmp_path, capsys):
    from training import style
    from training.data import SpectrogramDataset

    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no audio files"):
        SpectrogramDataset(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        SpectrogramDataset(tmp_path / "missing")
    assert style.main(base_flags(tmp_path / "empty", tmp_path / "out")) == 2
    assert "holds no audio files" in capsys.readouterr().err


def test_unreadable_audio_names_the_file(tmp_path):
    from training.data import SpectrogramDataset

    write_tone(tmp_path / "good.wav", 300)
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wave file")
    with pytest.raises(InputError, match="broken.wav"):
        SpectrogramDataset(tmp_path)


def test_silent_audio_only_is_refused(tmp_path):
    from training.data import SpectrogramDataset

    sf.write(tmp_path / "quiet.wav", np.zeros(RATE, np.float32), RATE)
    with pytest.raises(InputError, match="silent"):
        SpectrogramDataset(tmp_path)


def test_lora_data_errors_name_what_is_missing(tmp_path, frames):
    from training import lora

    with pytest.raises(InputError, match="no metadata.jsonl"):
        lora.read_pairs(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "nope.png", "text": "x"}\n')
    with pytest.raises(InputError, match="do not exist"):
        lora.read_pairs(tmp_path)
    (tmp_path / "metadata.jsonl").write_text('{"file_name": "nope.png"}\n')
    with pytest.raises(InputError, match="no caption"):
        lora.read_pairs(tmp_path)
    table = tmp_path / "pairs.csv"
    table.write_text(f"image,caption\n{frames / '0.png'},a red square\n")
    assert lora.read_pairs(table) == [(frames / "0.png", "a red square")]
    assert [c for _, c in lora.read_pairs(frames)] == ["a red square", "a blue square", "a green field"]


def test_bad_numbers_are_refused(tmp_path, clips):
    from training import style

    with pytest.raises(InputError, match="--max-steps"):
        style.setup(base_flags(clips, tmp_path / "s", 0))


@pytest.mark.slow  # a few seconds: three clips through the app's spectrogram codec at 512 px
def test_spectrogram_dataset_uses_the_apps_codec(clips):
    from pipelines.signal import spectrogram
    from training.data import SpectrogramDataset, audio_windows, sd_pixels

    data = SpectrogramDataset(clips, transform=sd_pixels(512))
    assert len(data) == 3  # one 5.12 s window per 2.5 s clip
    item = data[0]
    assert item.shape == (3, 512, 512) and -1 <= item.min() < item.max() <= 1
    expected = spectrogram.audio_to_image(audio_windows(data.files[0], spectrogram.RIFFUSION)[0][None])
    assert np.array_equal(np.asarray(data.images[0]), np.asarray(expected))
