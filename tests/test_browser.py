"""A real browser on the real app: headless Chromium (Debian's package) driven by Playwright.

`make test` installs Chromium with apt when it is missing; the screenshot lands in tests/artifacts/.
"""

import pytest
from conftest import click_example

pytestmark = pytest.mark.browser


def test_sound_to_music_example_runs_in_the_browser(page, artifacts):
    page.get_by_role("tab", name="Sound to music").click()
    # an example fills the sound and the prompt; the sound is ready once the player has fetched its file
    click_example(page, "knocks.wav")
    prompt = page.get_by_label("Style prompt")
    # wait for the state we need (the example's text in the prompt box), not for the text anywhere on the page:
    # the examples table shows it before the click has filled the inputs
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea, input')].some(t => t.value === 'funk drums , bass')")
    assert prompt.input_value() == "funk drums , bass"
    page.get_by_role("button", name="Make music").click()
    # the metrics arrive with the other outputs
    page.wait_for_function("document.body.innerText.includes('Chroma CENS similarity')", timeout=180_000)
    for name in ("input-spectrogram.png", "mask.png", "output-spectrogram.png"):
        assert page.locator(f"img[src*='{name}']").count() >= 1, f"{name} is not on the page"
    assert page.locator("audio[src*='music.wav'], [data-testid='waveform-Music'], a[href*='music.wav']").count() >= 1
    page.screenshot(path=str(artifacts / "sound_to_music.png"), full_page=True)


def test_error_is_shown_and_the_app_keeps_working(page, artifacts):
    page.get_by_role("tab", name="Sound to music").click()
    page.get_by_label("Style prompt").fill("")
    page.get_by_role("button", name="Make music").click()
    page.wait_for_function("document.body.innerText.includes('Style prompt (parameter prompt) is empty')",
                           timeout=60_000)
    page.screenshot(path=str(artifacts / "sound_to_music_error.png"), full_page=True)
    page.get_by_role("tab", name="About").click()
    page.wait_for_function("document.body.innerText.includes('Models in memory')")


def test_music_to_image_describe_then_generate(page, artifacts):
    page.get_by_role("tab", name="Music to image").click()
    click_example(page, "groove.wav")
    page.get_by_role("button", name="Describe").click()
    description = page.get_by_label("Description (editable; empty: made from the music)")
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('This piece of music'))")
    tempo = page.get_by_label("Tempo (beat tracking; refined by a fit through the beats)").input_value()
    stated = tempo.split(" BPM")[0]  # int() of librosa's estimate, as TechJam; the groove is made at 120 BPM
    assert abs(int(stated) - 120) <= 4 and f"It is of tempo {stated} " in description.input_value()
    description.fill("A neon city at night, drawn in ink")  # the user edits the sentence
    page.get_by_role("button", name="Generate image").click()
    page.wait_for_selector("img[src*='music-to-image.png']", timeout=180_000)
    assert page.get_by_label("Description used").input_value() == "A neon city at night, drawn in ink"
    page.screenshot(path=str(artifacts / "music_to_image.png"), full_page=True)


def test_spectrogram_tab_draws_axes(page, artifacts):
    page.get_by_role("tab", name="Spectrogram").click()
    # the state we need is the sound in the player: the player fetches the file once the example has set it
    click_example(page, "kettle.wav")  # the sound-to-music tab has one too: the visible one is this tab's
    page.get_by_role("button", name="Sound → spectrogram").click()
    page.wait_for_selector("img[src*='spectrogram-riffusion.png']", timeout=60_000)
    assert page.locator("img").count() >= 2  # the PNG and the plot with axes
    page.screenshot(path=str(artifacts / "spectrogram.png"), full_page=True)


def test_image_to_music_example_runs_in_the_browser(page, artifacts):
    page.get_by_role("tab", name="Image to music").click()
    page.locator("img[src*='sunset.png']").locator("visible=true").first.click()  # example thumbnail
    # the picture is in the input once the input shows it beside the thumbnail
    page.wait_for_function("() => [...document.querySelectorAll(\"img[src*='sunset.png']\")]"
                           ".filter(img => img.complete && img.naturalWidth > 0).length >= 2")
    page.get_by_label("Duration (s)").first.fill("2")
    page.get_by_role("button", name="Make music").locator("visible=true").click()
    page.wait_for_selector("audio[src*='image-to-music.wav'], a[href*='image-to-music.wav']", state="attached",
                           timeout=120_000)
    assert page.get_by_label("Prompt used (the caption, or yours)").input_value().strip()
    page.screenshot(path=str(artifacts / "image_to_music.png"), full_page=True)


def _stops_within_one_step(steps: list, stop) -> None:
    """Wait until the run is denoising, call ``stop()``, and check that at most one more step ran."""
    import time

    deadline = time.monotonic() + 120
    while len(steps) < 2:
        assert time.monotonic() < deadline, "the run did not start"
        time.sleep(0.05)
    stop()
    at_stop = len(steps)
    while True:  # until no step came for a while
        seen = len(steps)
        time.sleep(3.0)
        if len(steps) == seen or time.monotonic() > deadline:
            break
    assert len(steps) - at_stop <= 1 and len(steps) < 50


def test_the_cancel_button_stops_the_run(page, counted_steps):
    page.get_by_role("tab", name="Music to image").click()
    page.get_by_label("Description (editable; empty: made from the music)").fill("a slow cancelled sunrise")
    page.get_by_role("button", name="Generate image").click()
    _stops_within_one_step(counted_steps, lambda: page.get_by_role("button", name="Cancel").locator("visible=true").click())


def test_closing_the_page_stops_its_run(page, counted_steps):
    other = page.context.browser.new_page()  # its own session
    other.goto(page.url)
    other.get_by_role("tab", name="Music to image").click()
    other.get_by_label("Description (editable; empty: made from the music)").fill("a run nobody waits for")
    other.get_by_role("button", name="Generate image").click()
    _stops_within_one_step(counted_steps, other.close)
