"""Every uploaded image goes through pipelines.signal.images.open_image: modes, bit depths, alpha, EXIF
orientation, bombs and non-images, through the loader and through the API."""

import struct
import zlib

import numpy as np
import pytest
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from core.errors import InputError
from pipelines.systems import image_to_music
from pipelines.signal import images, spectrogram
from pipelines.schema import limits


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_bomb(path, side=30000):
    """A 1-bit side x side PNG of zeros: about 110 kB on disk, 900 megapixels when decoded."""
    row = b"\x00" * (1 + (side + 7) // 8)
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", data)
                     + _png_chunk(b"IEND", b""))
    return path


def write_svg(path):
    path.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
                    '<rect width="64" height="64"/></svg>')
    return path


def test_16_bit_and_float_greyscale_are_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    png16 = tmp_path / "deep.png"
    Image.fromarray((ramp * 65535).round().astype(np.uint16)).save(png16)
    tiff = tmp_path / "float.tiff"
    Image.fromarray(ramp.astype(np.float32), mode="F").save(tiff)
    for path in (png16, tiff):
        loaded = images.open_image(path)
        assert loaded.mode == "L"
        levels = np.asarray(loaded).astype(float)
        assert np.abs(levels - ramp * 255).max() <= 0.51, path.name  # clipping would saturate at 255 early


def test_alpha_is_composited_on_white_and_greyscale_stays_grey(tmp_path):
    hidden = Image.new("RGBA", (32, 32), (255, 0, 0, 0))  # fully transparent, red underneath
    hidden.save(tmp_path / "clear.png")
    assert images.open_image(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)
    half = Image.new("LA", (32, 32), (0, 128))
    assert images.to_8bit(half).mode == "L" and images.to_8bit(half).getpixel((0, 0)) == 127
    palette = Image.new("P", (32, 32), 3)
    palette.info["transparency"] = 3
    assert images.to_8bit(palette).getpixel((0, 0)) == (255, 255, 255)
    # the captioner's loader: a picture with transparency reaches BLIP on white
    picture = image_to_music.load_image(str(tmp_path / "clear.png"))
    assert picture.mode == "RGB" and picture.getpixel((5, 5)) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path):
    photo = Image.new("RGB", (40, 20), (0, 0, 255))
    photo.paste((255, 0, 0), (0, 0, 10, 20))  # red on the left of the stored pixels
    exif = photo.getexif()
    exif[0x0112] = 6  # "rotate 90 clockwise to display"
    photo.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    shown = images.open_image(tmp_path / "phone.jpg")
    assert shown.size == (20, 40)
    assert shown.getpixel((10, 2))[0] > 200  # red now on top, as the phone showed it
    assert image_to_music.load_image(str(tmp_path / "phone.jpg")).size == (20, 40)


@pytest.mark.parametrize("mode", ["1", "P", "CMYK", "YCbCr", "HSV", "LAB", "I", "I;16B", "RGBX", "PA", "RGBa"])
def test_every_mode_comes_out_8_bit(mode):
    out = images.to_8bit(Image.new(mode, (8, 8)))
    assert out.mode in ("L", "RGB")


def test_bombs_svgs_and_non_images_are_refused_before_decoding(tmp_path):
    assert Image.MAX_IMAGE_PIXELS == limits.MAX_IMAGE_PIXELS
    with pytest.raises(InputError, match=r"bomb.png is too large; accepted: 1 to 8192 px on each side, at most 50 megapixels\."):
        images.open_image(write_bomb(tmp_path / "bomb.png"))
    with pytest.raises(InputError, match="SVG drawing"):
        images.open_image(write_svg(tmp_path / "drawing.svg"))
    disguised = write_svg(tmp_path / "drawing.png")
    with pytest.raises(InputError, match="SVG drawing"):
        images.open_image(disguised)
    text = tmp_path / "notes.png"
    text.write_text("not a picture at all")
    with pytest.raises(InputError, match="notes.png is not an image") as caught:
        images.open_image(text)
    assert str(tmp_path) not in str(caught.value)
    Image.new("RGB", (64, 64)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:60])
    with pytest.raises(InputError, match="cut.png"):
        images.open_image(tmp_path / "cut.png")


def test_spectrogram_uploads_keep_their_metadata_through_the_loader(tmp_path):
    audio = np.sin(np.linspace(0, 400, 441 * 64)).astype(np.float32)
    spectrogram.save_image(spectrogram.audio_to_image(audio), tmp_path / "ours.png")
    loaded = spectrogram.load_image(tmp_path / "ours.png")
    assert spectrogram.read_metadata(loaded)["source"] == "png"
    assert spectrogram.read_metadata(loaded)["max_value"] > 0


def write_text(path):
    path.write_text("hello, not a picture")
    return path


# -- through the API ---------------------------------------------------------------------------------------
BAD_UPLOADS = {
    "text file named .png": (lambda d: write_text(d / "text.png"), "text.png is not an image"),
    "30000x30000 PNG bomb": (lambda d: write_bomb(d / "bomb.png"), "too large"),
    "SVG": (lambda d: write_svg(d / "drawing.svg"), "SVG drawing"),
}


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
@pytest.mark.parametrize("endpoint", ["/recommend_songs", "/spectrogram_to_audio"])
def test_unreadable_uploads_get_our_message_in_every_tab(client, tmp_path, kind, endpoint):
    make, words = BAD_UPLOADS[kind]
    path = make(tmp_path)
    args = (handle_file(str(path)), "") if endpoint == "/recommend_songs" else (handle_file(str(path)), "auto")
    with pytest.raises(AppError, match=words) as caught:
        client.predict(*args, api_name=endpoint)
    message = str(caught.value)
    assert "preprocess" not in message and "index 0" not in message and "/tmp" not in message


def test_a_transparent_picture_is_captioned_on_white_through_the_api(client, tmp_path, monkeypatch):
    seen = []
    original = image_to_music.caption_image

    def spy(model, processor, image, *args, **kwargs):
        seen.append(image.getpixel((0, 0)))
        return original(model, processor, image, *args, **kwargs)

    monkeypatch.setattr(image_to_music, "caption_image", spy)
    Image.new("RGBA", (32, 32), (0, 200, 0, 0)).save(tmp_path / "clear.png")
    client.predict(handle_file(str(tmp_path / "clear.png")), "", api_name="/recommend_songs")
    assert seen == [(255, 255, 255)]


def test_over_the_pixel_limit_but_under_pils_bomb_error_is_refused_from_the_header(tmp_path):
    big = write_bomb(tmp_path / "big.png", side=8000)  # 64 MP: over our limit, under twice it
    with pytest.raises(InputError, match=r"big.png \(8000x8000 px\) is too large"):
        images.open_image(big, max_width=10000, max_height=10000)


# -- spectrograms that are not exactly what we write (item 8) and deep ones (item 7) ------------------------
def _riffusion_png(tmp_path):
    t = np.arange(44100) / 44100
    image = spectrogram.audio_to_image(np.sin(2 * np.pi * 330 * t).astype(np.float32))
    bare = Image.fromarray(np.asarray(image.convert("L")))  # pixels only: no metadata
    bare.save(tmp_path / "plain.png")
    return bare


def test_a_16_bit_spectrogram_sounds_like_its_8_bit_original_through_the_api(client, tmp_path):
    import soundfile as sf

    bare = _riffusion_png(tmp_path)
    Image.fromarray(np.asarray(bare).astype(np.uint16) * 257).save(tmp_path / "deep.png")  # same levels, 16 bits
    (plain, _), (deep, _) = (client.predict(handle_file(str(tmp_path / n)), "auto", api_name="/spectrogram_to_audio")
                             for n in ("plain.png", "deep.png"))
    np.testing.assert_allclose(sf.read(deep)[0], sf.read(plain)[0], atol=1e-4)


@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_an_audio_diffusion_image_in_any_mode_is_read_as_audio_diffusion(client, tmp_path, mode):
    import soundfile as sf

    t = np.arange(22050 * 3) / 22050
    image = spectrogram.audio_to_image(np.sin(2 * np.pi * 440 * t).astype(np.float32), "audio-diffusion")
    Image.fromarray(np.asarray(image)).convert(mode).save(tmp_path / f"ad_{mode}.png")  # no metadata
    wav, _ = client.predict(handle_file(str(tmp_path / f"ad_{mode}.png")), "auto", api_name="/spectrogram_to_audio")
    samples, rate = sf.read(wav)
    assert rate == 22050 and len(samples) == image.width * 512 - 1


@pytest.mark.parametrize("width", [1, 2, 4])
def test_a_spectrogram_only_a_few_px_wide_inverts(client, tmp_path, width):
    import soundfile as sf

    Image.new("L", (width, 512), 60).save(tmp_path / "narrow.png")
    wav, _ = client.predict(handle_file(str(tmp_path / "narrow.png")), "auto", api_name="/spectrogram_to_audio")
    samples, rate = sf.read(wav)
    assert rate == 44100 and len(samples) == width * 441 - 1


def test_a_float_image_with_nan_is_refused_in_words(tmp_path):
    values = np.zeros((16, 16), np.float32)
    values[3, 3] = np.nan
    Image.fromarray(values, mode="F").save(tmp_path / "nan.tiff")
    with pytest.raises(InputError, match="not finite numbers"):
        images.open_image(tmp_path / "nan.tiff")
