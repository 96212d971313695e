"""A real browser on the real app: headless Chromium (Debian's package) driven by Playwright.

`make test` installs Chromium with apt when it is missing; the screenshot lands in tests/artifacts/.
"""

import shutil

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-gpu", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="module")
def page(served_app):
    from playwright.sync_api import sync_playwright

    if not shutil.which("chromium"):
        pytest.fail("Chromium is not installed: run `make browser` (Debian: apt-get install chromium).")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1800})
        page.set_default_timeout(120_000)
        page.goto(served_app)
        yield page
        browser.close()


def test_sound_to_music_example_runs_in_the_browser(page, artifacts):
    page.get_by_role("tab", name="Sound to music").click()
    page.get_by_text("knocks.wav", exact=True).click()  # an example fills the sound and the prompt
    prompt = page.get_by_label("Style prompt")
    page.wait_for_function("document.body.innerText.includes('funk drums , bass')")
    assert prompt.input_value() == "funk drums , bass"
    page.get_by_role("button", name="Make music").click()
    # the metrics arrive with the other outputs
    page.wait_for_function("document.body.innerText.includes('chroma_cens_similarity')", timeout=180_000)
    for name in ("input-spectrogram.png", "mask.png", "output-spectrogram.png"):
        assert page.locator(f"img[src*='{name}']").count() >= 1, f"{name} is not on the page"
    assert page.locator("audio[src*='music.wav'], [data-testid='waveform-Music'], a[href*='music.wav']").count() >= 1
    page.screenshot(path=str(artifacts / "sound_to_music.png"), full_page=True)


def test_error_is_shown_and_the_app_keeps_working(page, artifacts):
    page.get_by_role("tab", name="Sound to music").click()
    page.get_by_label("Style prompt").fill("")
    page.get_by_role("button", name="Make music").click()
    page.wait_for_function("document.body.innerText.includes('style prompt')", timeout=60_000)
    page.screenshot(path=str(artifacts / "sound_to_music_error.png"), full_page=True)
    page.get_by_role("tab", name="About").click()
    page.wait_for_function("document.body.innerText.includes('Models in memory')")
