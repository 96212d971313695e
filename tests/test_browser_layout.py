"""The page as a visitor sees it, on a laptop (1280x800) and a phone (390x844), in headless Chromium.

For every tab: the main button and its result share the first screen after a click (on the laptop
without scrolling at all; on the phone in the screen where the button was pressed), no output shows
an upload hint before it has a result, no empty metrics table shows, and the About tab's model table
is current without pressing Refresh. On the phone every tab's name shows, tables scroll instead of
being cut, and model names are not broken mid-word. A screenshot of each tab's first screen after
its result lands in tests/artifacts/layout-<width>-<tab>.png.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from conftest import click_example, open_page

pytestmark = pytest.mark.browser

ASSETS = Path(__file__).resolve().parents[1] / "assets"
LAPTOP, PHONE = (1280, 800), (390, 844)
UPLOAD_HINT = "Click to Upload"
SHOWN = 100  # px of a result that must be in the screen (all of it when it is shorter)

# The block around the first visible element matching a selector: its box in the viewport's pixels.
BOX = """(selector) => {
  const element = [...document.querySelectorAll(selector)].find(e => e.closest('.block')?.offsetParent);
  if (!element) return null;
  const r = element.closest('.block').getBoundingClientRect();
  return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};
}"""
# The label of every visible block that shows an upload hint.
UPLOAD_HINTS = """(hint) => [...document.querySelectorAll('.block')]
  .filter(b => b.offsetParent && !b.querySelector('.block') && b.innerText.includes(hint))
  .map(b => b.querySelector('[data-testid="block-label"]')?.innerText.trim() ?? '(no label)')"""
# Visible tables whose headers are metric/value but that have no row.
EMPTY_METRICS = """() => [...document.querySelectorAll('[role=grid]')]
  .filter(g => g.offsetParent && g.querySelector('[title="metric"]') && !g.querySelector('[role=gridcell]'))
  .length"""
# Visible tables reaching past the right edge with no scrolling box around them that fits the screen.
CUT_TABLES = """() => [...document.querySelectorAll('table')].filter(t => t.offsetParent).filter(t => {
  const width = document.documentElement.clientWidth;
  if (t.getBoundingClientRect().right <= width + 1) return false;
  for (let e = t.parentElement; e; e = e.parentElement) {
    const style = getComputedStyle(e);
    if (['auto', 'scroll'].includes(style.overflowX) && e.scrollWidth > e.clientWidth
        && e.getBoundingClientRect().right <= width + 1) return false;
  }
  return true;
}).map(t => t.innerText.slice(0, 60))"""
# The first-column cells (names) of the About tab's tables that are broken onto more lines or clipped.
BROKEN_NAMES = """() => [...document.querySelectorAll('.studio-table [role=gridcell][data-col="0"]')]
  .filter(cell => cell.offsetParent).filter(cell => {
    const range = document.createRange();
    range.selectNodeContents(cell.querySelector('span'));
    const lines = new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
    return lines > 1 || range.getBoundingClientRect().right > cell.getBoundingClientRect().right + 1;
  }).map(cell => cell.innerText)"""
# The About tab's models table: model name -> uses.
MODEL_USES = """() => {
  const grid = document.querySelector('[role=grid][aria-label="Models in memory"]');
  return Object.fromEntries([...grid.querySelectorAll('[role=row]')].map(row =>
      [...row.querySelectorAll('[role=gridcell]')].map(c => c.innerText.trim()))
    .filter(cells => cells.length === 5).map(cells => [cells[0], Number(cells[3])]));
}"""


@dataclass
class Tab:
    name: str
    button: str  # the main button
    result: str  # a selector of the result's file (an <img>, an <audio> or a download link)
    uploads: tuple[str, ...]  # labels of its inputs that take an upload
    fill: Callable = lambda page: None


def _length(label: str, seconds: str) -> Callable:
    return lambda page: page.get_by_label(label).locator("visible=true").first.fill(seconds)


def _then(*steps: Callable) -> Callable:
    def run(page):
        for step in steps:
            step(page)
    return run


def _thumbnail(name: str) -> Callable:
    def click(page):
        page.locator(f"img[src*='{name}']").locator("visible=true").first.click()
        page.wait_for_function(f"() => [...document.querySelectorAll(\"img[src*='{name}']\")]"
                               ".filter(img => img.offsetParent && img.naturalWidth > 0).length >= 2")
    return click


def _example(name: str) -> Callable:
    return lambda page: click_example(page, name)


def _a_text_example(page) -> None:
    page.get_by_text("lofi hip hop beat with a warm electric piano").locator("visible=true").first.click()
    page.wait_for_function("() => [...document.querySelectorAll('textarea')]"
                           ".some(t => t.value === 'lofi hip hop beat with a warm electric piano')")


def _upload(label: str, *names: str) -> Callable:
    """Upload ``names`` (files of assets/) into the visible input labelled ``label``, as a visitor's file
    chooser does, and wait until the last one is in the input."""
    def upload(page):
        block = page.locator(".block", has=page.get_by_text(label, exact=True)).locator("visible=true").last
        block.locator("input[type=file]").set_input_files([str(ASSETS / name) for name in names])
        page.wait_for_function("(name) => [...document.querySelectorAll(`a[href*='${name}'], audio[src*='${name}']`)]"
                               ".some(element => element.offsetParent !== null)", arg=names[-1], timeout=60_000)
    return upload


def _a_playlist(page) -> None:
    page.get_by_text("groove.wav, rain.wav").locator("visible=true").first.click()
    page.locator("a[href*='rain.wav']").locator("visible=true").first.wait_for()


TABS = (
    Tab("Sound to music", "Make music", "a[href*='music.wav'], audio[src*='music.wav']", ("Everyday sound",),
        _example("knocks.wav")),
    Tab("Music to image", "Generate image", "img[src*='music-to-image.png']", ("Music",), _example("groove.wav")),
    Tab("Style interpolation", "Apply styles", "a[href*='styled.wav'], audio[src*='styled.wav']", ("Content audio",),
        _example("groove.wav")),
    Tab("Text to music", "Make music", "a[href*='text-to-music.wav'], audio[src*='text-to-music.wav']", (),
        _then(_a_text_example, _length("Length (s)", "1"))),
    Tab("Image to music", "Make music", "a[href*='image-to-music.wav'], audio[src*='image-to-music.wav']",
        ("Picture",), _then(_thumbnail("sunset.png"), _length("Duration (s)", "1"))),
    Tab("Playlist to music", "Make music", "a[href*='playlist-music.wav'], audio[src*='playlist-music.wav']",
        ("Playlist (audio files)",), _a_playlist),
    Tab("Extend", "Extend", "a[href*='extended.wav'], audio[src*='extended.wav']", ("Track to extend",),
        _then(_upload("Track to extend", "knocks.wav"), _length("Seconds to add", "1"))),
    Tab("Variations", "Make variations",
        "#variations-chosen a[href*='variation-1-seed-'], #variations-chosen audio[src*='variation-1-seed-']", (),
        _then(_length("Length (s)", "1"), _length("Variations (seeds)", "2"))),
    Tab("Train a style", "Train", "img[src*='loss.png']", ("Clips of the style (3 to 20 audio files)",),
        _then(_upload("Clips of the style (3 to 20 audio files)", "knocks.wav", "rain.wav", "kettle.wav"),
              _length("Steps", "2"))),
    Tab("Spectrogram", "Sound → spectrogram", "img[src*='spectrogram-riffusion.png']",
        ("Sound", "Spectrogram image (PNG)"), _example("kettle.wav")),
    Tab("History", "Download all", "a[href*='.zip']", ()),
)


def _box(locator) -> dict:
    box = locator.bounding_box()
    return {"top": box["y"], "bottom": box["y"] + box["height"]}


def _within_screen(page, box: dict, what: str) -> None:
    height = page.viewport_size["height"]
    assert box is not None, f"{what} is not on the page"
    assert box["top"] >= 0 and box["top"] + min(SHOWN, box["bottom"] - box["top"]) <= height, \
        f"{what} is not in the screen: top {box['top']:.0f} px, bottom {box['bottom']:.0f} px, screen {height} px"


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["laptop", "phone"])
def test_every_tab_shows_its_button_and_result_together(browser, served_app, artifacts, size):
    width, height = size
    page = open_page(browser, served_app, width, height)
    try:
        if size == PHONE:  # every tab's name shows (none hidden behind a menu)
            for tab in page.get_by_role("tab").all():
                box = tab.bounding_box()
                assert tab.is_visible() and box and box["x"] >= 0 and box["x"] + box["width"] <= width, tab.inner_text()
        for tab in TABS:
            page.get_by_role("tab", name=tab.name).click()
            page.evaluate("window.scrollTo(0, 0)")
            # before any result: uploads only where the tab takes one, no empty metrics table
            hints = page.evaluate(UPLOAD_HINTS, UPLOAD_HINT)
            assert sorted(hints) == sorted(tab.uploads), f"{tab.name}: upload hints on {hints}"
            assert page.evaluate(EMPTY_METRICS) == 0, f"{tab.name}: an empty metrics table shows"
            if size == PHONE:
                assert page.evaluate(CUT_TABLES) == [], f"{tab.name}: a table is cut on the right"
            tab.fill(page)
            button = page.get_by_role("button", name=tab.button, exact=True).locator("visible=true").first
            if size == LAPTOP:  # the first screen, as the page opens
                page.evaluate("window.scrollTo(0, 0)")
            else:  # the screen where the thumb presses the button
                button.evaluate("b => b.scrollIntoView({block: 'center'})")
            scrolled = page.evaluate("window.scrollY")
            _within_screen(page, _box(button), tab.button)
            button.click()
            page.wait_for_function(f"() => ({BOX})({tab.result!r}) !== null", timeout=180_000)
            assert page.evaluate("window.scrollY") == scrolled  # nothing moved the page
            _within_screen(page, page.evaluate(BOX, tab.result), f"{tab.name}'s result")
            page.screenshot(path=str(artifacts / f"layout-{width}-{tab.name.replace(' ', '_')}.png"))
            if tab.name == "Music to image":  # Generate (not only Describe) fills the panels, marked random
                page.wait_for_function("() => [...document.querySelectorAll('input, textarea')]"
                                       ".some(t => t.offsetParent && / BPM|no steady beat/.test(t.value))")
                genre = page.locator(".block", has=page.get_by_text("Genre (random model: tiny profile)"))
                assert "%" in genre.locator("visible=true").first.inner_text()
            if tab.name == "Sound to music":  # its metrics table shows once it has rows
                page.get_by_text("Chroma CENS similarity").locator("visible=true").first.wait_for()
        # About: the models that ran show as used, without pressing Refresh
        page.get_by_role("tab", name="About").click()
        page.wait_for_function(f"() => ({MODEL_USES})()['riffusion'] > 0")
        uses = page.evaluate(MODEL_USES)
        assert uses["sd15"] >= 1 and uses["musicgen"] >= 1, uses
        assert "GPU" not in page.get_by_text("Models load on first use").first.inner_text()  # this is a CPU
        if size == PHONE:
            assert page.evaluate(CUT_TABLES) == [], "About: a table is cut on the right"
            assert page.evaluate(BROKEN_NAMES) == [], "About: a model name is broken mid-word"
        page.screenshot(path=str(artifacts / f"layout-{width}-About.png"))
    finally:
        page.close()
