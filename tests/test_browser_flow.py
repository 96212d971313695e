"""Results flowing between tabs in a real browser (headless Debian Chromium via Playwright): "Send to"
buttons, then the session's history and "Download all"."""

import pytest

from conftest import click_example

pytestmark = pytest.mark.browser


def visible(page, role, name):
    return page.get_by_role(role, name=name, exact=True).locator("visible=true")


def selected_tab(page) -> str:
    return page.locator("[role='tab'][aria-selected='true']").inner_text().strip()


def test_results_flow_between_tabs_and_the_session_downloads_them(page, artifacts):
    # text to music: 1 s of music
    page.get_by_role("tab", name="Text to music").click()
    page.get_by_label("Length (s)").first.fill("1")
    visible(page, "button", "Make music").click()
    page.wait_for_selector("audio[src*='text-to-music.wav'], a[href*='text-to-music.wav']", state="attached",
                           timeout=120_000)

    # its music -> music to image: the tab opens with the music in its input
    # the state we need is the music in the target's player: the player fetches the file once it is set
    with page.expect_response(lambda response: "text-to-music.wav" in response.url and response.ok):
        visible(page, "button", "Send to Music to image").first.click()
    page.wait_for_function("() => [...document.querySelectorAll(\"[role='tab'][aria-selected='true']\")]"
                           ".some(t => t.innerText.includes('Music to image'))")
    page.get_by_label("Description (editable; empty: made from the music)").fill("a red house by the sea")
    visible(page, "button", "Generate image").click()
    page.wait_for_selector("img[src*='music-to-image.png']", timeout=180_000)

    # its picture -> image to music, which makes music of it
    visible(page, "button", "Send to Image to music").click()
    page.wait_for_function("() => [...document.querySelectorAll(\"[role='tab'][aria-selected='true']\")]"
                           ".some(t => t.innerText.includes('Image to music'))")
    assert page.locator("img[src*='music-to-image.png']").locator("visible=true").count() >= 1
    page.get_by_label("Duration (s)").first.fill("1")
    visible(page, "button", "Make music").click()
    page.wait_for_selector("audio[src*='image-to-music.wav'], a[href*='image-to-music.wav']", state="attached",
                           timeout=120_000)
    assert page.get_by_label("Prompt used (the caption, or yours)").input_value().strip()

    # that music -> a playlist (added to its tracks) and -> the spectrogram tab, which draws it
    visible(page, "button", "Send to Playlist to music").click()
    page.wait_for_function("() => [...document.querySelectorAll(\"[role='tab'][aria-selected='true']\")]"
                           ".some(t => t.innerText.includes('Playlist to music'))")
    page.locator("a[href*='image-to-music.wav']").locator("visible=true").first.wait_for()  # the track's link
    page.get_by_role("tab", name="Image to music").click()
    with page.expect_response(lambda response: "image-to-music.wav" in response.url and response.ok):
        visible(page, "button", "Send to Spectrogram").click()
    page.wait_for_function("() => [...document.querySelectorAll(\"[role='tab'][aria-selected='true']\")]"
                           ".some(t => t.innerText.includes('Spectrogram'))")
    visible(page, "button", "Sound → spectrogram").click()
    page.wait_for_selector("img[src*='spectrogram-riffusion.png']", timeout=60_000)

    # the session's history shows the pictures; "Download all" gives the zip
    page.get_by_role("tab", name="History").click()
    page.wait_for_selector("[data-testid='gallery'] img, .gallery img, button img", state="attached")
    assert page.locator("img[src*='music-to-image.png']").count() >= 1
    # four results, the newest the spectrogram conversion; the image-to-music one, chosen, shows its parameters
    # and runs again with the same settings: a fifth result
    page.wait_for_function("() => [...document.querySelectorAll('input')]"
                           ".some(i => i.value.startsWith('4. ') && i.value.endsWith('audio_to_spectrogram'))")
    page.get_by_label("Result").click()
    page.get_by_role("option").filter(has_text="image_to_music").first.click()
    page.wait_for_function("() => [...document.querySelectorAll('[role=gridcell]')]"
                           ".some(c => c.offsetParent && c.innerText.trim() === 'image_to_music')")
    visible(page, "button", "Re-run the chosen result (same settings and seed)").click()
    page.wait_for_function("() => [...document.querySelectorAll('input')].some(i => i.value.startsWith('5. ')"
                           " && i.value.endsWith('image_to_music'))", timeout=120_000)
    visible(page, "button", "Download all").click()
    page.wait_for_selector("a[href*='.zip']", state="attached", timeout=60_000)
    page.screenshot(path=str(artifacts / "send_to_and_history.png"), full_page=True)


def test_sound_to_music_result_goes_to_music_to_image(page):
    page.get_by_role("tab", name="Sound to music").click()
    click_example(page, "knocks.wav")  # waits until the sound is in the input, not only the prompt
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea, input')].some(t => t.value === 'funk drums , bass')")
    visible(page, "button", "Make music").click()
    page.wait_for_function("document.body.innerText.includes('Chroma CENS similarity')", timeout=180_000)
    with page.expect_response(lambda response: response.url.endswith("/music.wav") and response.ok):
        visible(page, "button", "Send to Music to image").click()
    page.wait_for_function("() => [...document.querySelectorAll(\"[role='tab'][aria-selected='true']\")]"
                           ".some(t => t.innerText.includes('Music to image'))")
    visible(page, "button", "Describe").click()  # the sent music is the tab's input: it describes it
    page.wait_for_function(
        "() => [...document.querySelectorAll('textarea')].some(t => t.value.startsWith('This piece of music'))")
