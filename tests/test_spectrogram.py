"""Spectrogram codec: round trips, layouts, metadata, riffusion compatibility. Short signals only."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from pipelines.signal import spectrogram as S
from pipelines.signal.metrics import spectral_convergence
from core.errors import InputError
from pipelines.signal.spectrogram_plot import plot_spectrogram

R, A = S.RIFFUSION, S.AUDIO_DIFFUSION
ITERS = 16  # enough for pitch and timing checks, keeps the file fast


@pytest.fixture(autouse=True, scope="module")
def _threads():
    old = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(old)


def tone(freq, seconds, sr, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.argmax(spec) * sr / len(x)


def mel_bin_width_hz(params, hz):
    """Spacing of mel centre frequencies around hz."""
    import librosa

    centres = librosa.mel_frequencies(params.n_mels + 2, fmin=params.f_min, fmax=params.f_max, htk=params.mel_htk)
    i = np.searchsorted(centres, hz)
    return centres[i + 1] - centres[i - 1]


# --- shapes and layouts ----------------------------------------------------------------------


def test_riffusion_window_is_512_by_512_rgb_mono_replicated():
    x = tone(440, R.window_samples / R.sample_rate, R.sample_rate)[: R.window_samples]
    x = np.pad(x, (0, R.window_samples - len(x)))
    img = S.audio_to_image(x, R)
    assert img.size == (512, 512) and img.mode == "RGB"
    arr = np.asarray(img)
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert abs(R.window_seconds - 5.12) < 1e-9


def test_riffusion_orientation_low_frequencies_at_bottom_loud_dark():
    img = np.asarray(S.audio_to_image(tone(200, 1.0, R.sample_rate), R))[..., 0]
    darkest_row = np.argmin(img.mean(axis=1))
    assert darkest_row > 400  # 200 Hz sits near the bottom of a 0-10 kHz mel axis
    assert img.min() < 10  # the peak is near black
    assert img[:50].mean() > img.min() + 100  # high frequencies, far from the tone, are light


def test_audio_diffusion_is_256_by_256_l_with_mel0_on_top():
    x = tone(200, A.window_samples / A.sample_rate, A.sample_rate)
    x = np.pad(x, (0, A.window_samples - len(x)))
    img = S.audio_to_image(x, A)
    assert img.size == (256, 256) and img.mode == "L"
    arr = np.asarray(img)
    assert np.argmax(arr.mean(axis=1)) < 40  # teticio's layout: loud is bright, low bins on top
    assert arr.max() == 255


def test_stereo_layout_r_zero_g_left_b_right():
    sr = R.sample_rate
    st = np.stack([tone(440, 0.5, sr), np.zeros(int(0.5 * sr), np.float32)])
    arr = np.asarray(S.audio_to_image(st, R))
    assert (arr[..., 0] == 0).all()
    assert arr[..., 1].min() < 50 and (arr[..., 2] == 255).all()


# --- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("params,freq", [(R, 440.0), (R, 2500.0), (A, 660.0)])
def test_tone_pitch_survives(params, freq):
    x = tone(freq, 1.0, params.sample_rate)
    y = S.image_to_audio(S.audio_to_image(x, params), iterations=ITERS)[0]
    assert np.isfinite(y).all()
    assert abs(dominant_hz(y, params.sample_rate) - freq) <= mel_bin_width_hz(params, freq)


def test_output_length_and_shape():
    n = 30000
    img = S.audio_to_image(np.random.default_rng(0).standard_normal(n).astype(np.float32) * 0.1, R)
    frames = 1 + n // R.hop_length
    assert img.size == (frames, 512)
    y = S.image_to_audio(img, iterations=2)
    assert y.shape == (1, frames * R.hop_length - 1) and y.dtype == np.float32
    assert np.abs(y).max() == pytest.approx(0.9, rel=1e-3)  # normalised like riffusion


def test_onset_stays_in_place():
    sr = R.sample_rate
    x = np.zeros(sr, np.float32)
    onset = int(0.6 * sr)
    x[onset:] = tone(330, 0.4, sr)[: sr - onset]
    y = S.image_to_audio(S.audio_to_image(x, R), iterations=ITERS)[0][: len(x)]
    hop = R.hop_length

    def first_loud_block(sig):
        rms = np.sqrt(np.mean(sig[: len(sig) // hop * hop].reshape(-1, hop) ** 2, axis=1))
        return int(np.argmax(rms > 0.5 * rms.max()))

    assert abs(first_loud_block(y) - first_loud_block(x)) <= 2
    assert first_loud_block(x) == onset // hop


def test_stereo_channels_kept_apart():
    sr = R.sample_rate
    st = np.stack([tone(440, 1.0, sr), tone(1500, 1.0, sr)])
    y = S.image_to_audio(S.audio_to_image(st, R), iterations=ITERS)
    assert y.shape[0] == 2
    assert abs(dominant_hz(y[0], sr) - 440) < mel_bin_width_hz(R, 440)
    assert abs(dominant_hz(y[1], sr) - 1500) < mel_bin_width_hz(R, 1500)
    spec_left = np.abs(np.fft.rfft(y[0]))
    k = lambda hz: int(hz * len(y[0]) / sr)  # noqa: E731
    assert spec_left[k(1500) - 20 : k(1500) + 20].max() < 0.01 * spec_left.max()


def test_chirp_and_noise_round_trip_quality():
    sr = R.sample_rate
    t = np.arange(int(1.5 * sr)) / sr
    chirp = (0.5 * np.sin(2 * np.pi * (200 * t + 1500 * t**2))).astype(np.float32)
    # noise kept below the mel axis' 10 kHz top: what is above it is not in the image at all
    from scipy.signal import butter, sosfilt

    white = np.random.default_rng(1).standard_normal(len(t))
    noise = (0.2 * sosfilt(butter(8, 8000, fs=sr, output="sos"), white)).astype(np.float32)
    for x, bound in ((chirp, 0.3), (noise, 0.5)):
        y = S.image_to_audio(S.audio_to_image(x, R), iterations=ITERS)
        sc = spectral_convergence(x, y, R)
        assert sc < bound, sc


def test_more_iterations_help():
    sr = R.sample_rate
    t = np.arange(sr) / sr
    x = (np.sin(2 * np.pi * 300 * t) * np.exp(-3 * t) + 0.3 * np.sin(2 * np.pi * 1210 * t)).astype(np.float32)
    mel = S.audio_to_mel(x, R)
    sc0 = spectral_convergence(x, S.mel_to_audio(mel, R, iterations=0), R)
    sc16 = spectral_convergence(x, S.mel_to_audio(mel, R, iterations=16), R)
    assert sc16 < 0.7 * sc0


def test_clipped_input():
    x = np.clip(3 * tone(220, 1.0, R.sample_rate), -1, 1)
    y = S.image_to_audio(S.audio_to_image(x, R), iterations=ITERS)
    assert np.isfinite(y).all() and np.abs(y).max() <= 1.0
    assert abs(dominant_hz(y[0], R.sample_rate) - 220) < mel_bin_width_hz(R, 220)


@pytest.mark.parametrize("params", [R, A])
def test_silence_encodes_without_nan(params):
    img = S.audio_to_image(np.zeros(params.sample_rate, np.float32), params)
    arr = np.asarray(img)
    assert (arr == (255 if params.invert else 0)).all()
    assert np.isfinite(S.read_metadata(img)["max_value"])
    y = S.image_to_audio(img, iterations=2)
    assert np.isfinite(y).all()


def test_integer_pcm_is_scaled_like_float():
    x = tone(440, 0.3, R.sample_rate)
    pcm = np.round(x * 32767).astype(np.int16)
    a, b = S.audio_to_mel(x, R), S.audio_to_mel(pcm, R)
    assert torch.allclose(a, b, rtol=1e-3, atol=float(a.max()) * 1e-4)


# --- metadata and compatibility --------------------------------------------------------------


@pytest.mark.parametrize("params", [R, A])
def test_metadata_survives_save_and_load(tmp_path, params):
    x = tone(500, 0.5, params.sample_rate)
    img = S.audio_to_image(x, params)
    peak = float(S.audio_to_mel(x, params).max())
    path = tmp_path / "spec.png"
    S.save_image(img, path)
    loaded = Image.open(path)
    meta = S.read_metadata(loaded)
    assert meta["params"] == params and meta["source"] == "png"
    assert meta["max_value"] == pytest.approx(peak, rel=1e-6)
    if params is R:
        assert loaded.getexif()[S.ExifTags.MAX_VALUE] == pytest.approx(peak, rel=1e-6)
        assert loaded.getexif()[S.ExifTags.SAMPLE_RATE] == 44100
    # decoding the loaded file gives the magnitudes back (to 8-bit precision)
    mel = S.audio_to_mel(x, params)
    decoded = S.image_to_mel(loaded)
    loud = mel > 0.1 * mel.max()
    rel = (decoded[loud] - mel[loud]).abs() / mel[loud]
    assert float(rel.median()) < 0.05


def riffusion_style_image(mel: np.ndarray, max_in_exif=True) -> Image.Image:
    """An image made the way riffusion's image_from_spectrogram + converter do it."""
    data = mel / mel.max()
    data = np.power(data, 0.25) * 255
    data = (255 - data).astype(np.uint8)  # riffusion truncates
    img = Image.fromarray(data[0], mode="L").convert("RGB").transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    exif = img.getexif()
    exif.update({11000: 44100, 11005: False, 11010: 10, 11020: 100, 11030: 400, 11040: 512,
                 11050: 0, 11060: 10000, 11070: 0.25})
    if max_in_exif:
        exif[11080] = float(mel.max())
    buf = io.BytesIO()
    img.save(buf, format="PNG", exif=exif)
    buf.seek(0)
    return Image.open(buf)


def test_riffusion_made_image_decodes_to_right_magnitudes():
    rng = np.random.default_rng(3)
    mel = rng.uniform(0, 4e7, size=(1, 512, 40)) ** 1.0
    mel[0, 100, 5] = 5e7  # the peak, low in frequency: row 511 - 100 of the image
    img = riffusion_style_image(mel)
    arr = np.asarray(img)
    assert arr[511 - 100, 5, 0] == 0  # riffusion layout: flipped, inverted
    meta = S.read_metadata(img)
    assert meta["source"] == "exif" and meta["params"] == R and meta["max_value"] == 5e7
    decoded = S.image_to_mel(img).numpy()
    expected = np.power((255 - np.asarray(img)[::-1, :, 0].astype(np.float64)) / 255, 4) * 5e7
    np.testing.assert_allclose(decoded[0], expected, rtol=1e-5, atol=1.0)
    # and truncation to 8 bits keeps every value within one level of the truth
    level = np.power(mel[0] / 5e7, 0.25) * 255
    got = np.power(decoded[0] / 5e7, 0.25) * 255
    assert np.abs(got - level).max() <= 1.0 + 1e-6


def test_missing_max_tag_assumes_30e6():
    mel = np.full((1, 512, 8), 1e6)
    mel[0, 0, 0] = 2e6
    img = riffusion_style_image(mel, max_in_exif=False)
    assert S.read_metadata(img)["max_value"] is None
    assert float(S.image_to_mel(img).max()) == pytest.approx(30e6)


def test_our_image_decodes_the_riffusion_way():
    """riffusion reads: flip, R channel, 255 - x, /255, ^4, x max (from its EXIF tag 11080)."""
    x = tone(700, 0.5, R.sample_rate) + tone(3000, 0.5, R.sample_rate, 0.2)
    img = Image.open(io.BytesIO(S.image_bytes(S.audio_to_image(x, R))))
    max_value = img.getexif()[11080]
    data = np.asarray(img.convert("RGB").transpose(Image.Transpose.FLIP_TOP_BOTTOM)).transpose(2, 0, 1)[0:1]
    theirs = np.power((255 - data.astype(np.float32)) / 255, 1 / 0.25) * max_value
    mel = S.audio_to_mel(x, R).numpy()
    loud = mel > 0.05 * mel.max()
    rel = np.abs(theirs[loud] - mel[loud]) / mel[loud]
    assert np.median(rel) < 0.05
    # riffusion's exif_from_image maps every tag through its enum: only its tags may be present
    assert set(img.getexif().keys()) <= {11000, 11005, 11007, 11010, 11020, 11030, 11040, 11050, 11060, 11070, 11080}


def test_stereo_detected_without_metadata():
    sr = R.sample_rate
    st = np.stack([tone(440, 0.3, sr), tone(1200, 0.3, sr)])
    img = S.audio_to_image(st, R)
    bare = Image.fromarray(np.asarray(img))  # no metadata at all
    assert S.image_to_mel(bare).shape[0] == 2


# --- errors and metrics ------------------------------------------------------------------------


def test_bad_inputs_raise_input_error():
    with pytest.raises(InputError):
        S.audio_to_image(np.zeros((3, 1000), np.float32), R)
    with pytest.raises(InputError):
        S.audio_to_image(np.array([0.0, np.nan, 0.0] * 100, np.float32), R)
    with pytest.raises(InputError):
        S.image_to_mel(Image.new("RGB", (64, 100)), R)
    with pytest.raises(InputError):
        S.get_params("nope")
    with pytest.raises(InputError):
        S.mel_to_audio(np.zeros((1, 100, 10)), R)


def test_spectral_convergence_definition():
    x = tone(440, 0.5, R.sample_rate) + 0.05 * np.random.default_rng(0).standard_normal(int(0.5 * R.sample_rate))
    assert spectral_convergence(x, x, R) < 1e-6
    assert spectral_convergence(x, 0.3 * x, R) < 1e-6  # the best gain removes level
    assert spectral_convergence(x, np.zeros_like(x), R) == pytest.approx(1.0)
    assert 0.1 < spectral_convergence(x, tone(880, 0.5, R.sample_rate), R) <= 1.0


def test_plot_has_axes_and_light_background():
    img = S.audio_to_image(tone(440, 1.0, R.sample_rate), R)
    fig = plot_spectrogram(img)
    assert fig.mode == "RGB" and fig.width > img.width and fig.height > img.height
    arr = np.asarray(fig)
    assert arr[2, 2].min() > 230  # light background
    assert (arr[:, :60] < 100).any()  # tick labels drawn left of the spectrogram
    stereo = plot_spectrogram(S.audio_to_image(np.stack([tone(440, 1.0, 44100)] * 2), R))
    assert stereo.height > fig.height * 1.5  # one panel per channel


def test_audio_diffusion_mel_matches_librosa():
    """teticio's Mel uses librosa.feature.melspectrogram with its defaults."""
    import librosa

    x = tone(440, 1.0, A.sample_rate) + tone(3000, 1.0, A.sample_rate, 0.1)
    ref = librosa.feature.melspectrogram(y=x, sr=A.sample_rate, n_fft=A.n_fft, hop_length=A.hop_length, n_mels=A.n_mels)
    ours = S.audio_to_mel(x, A)[0].double().numpy()
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=2e-3, atol=ref.max() * 1e-5)
