""""Send to" wiring: every button is connected to its target tab's input and selects that tab (no API endpoint)."""

import pytest

SOURCES = {  # button label -> (target input's label, target tab)
    "Send to Music to image": ("Music", "Music to image"),
    "Send to Spectrogram": ("Sound", "Spectrogram"),
    "Send to Playlist to music": ("Playlist (audio files)", "Playlist to music"),
    "Send to Image to music": ("Picture", "Image to music"),
    "Send to Extend": ("Track to extend", "Extend"),
}


@pytest.fixture(scope="module")
def config(studio):
    import app

    return app.build_demo(studio).get_config_file()


def test_every_send_to_button_fills_its_target_and_opens_its_tab(config):
    components = {c["id"]: c for c in config["components"]}
    label = lambda cid: components[cid].get("props", {}).get("label")  # noqa: E731
    buttons = {c["id"]: c["props"]["value"] for c in config["components"]
               if c.get("type") == "button" and str(c.get("props", {}).get("value", "")).startswith("Send to")}
    assert len(buttons) >= 14  # 6 audio results x 3 targets (the spectrogram's own: 2) + the picture
    seen = set()
    for dependency in config["dependencies"]:
        triggers = [cid for cid, _ in dependency["targets"]]
        for button in set(triggers) & set(buttons):
            target_label, tab_label = SOURCES[buttons[button]]
            target, tabs = dependency["outputs"]
            assert label(target) == target_label and components[tabs]["type"] == "tabs"
            assert dependency.get("api_visibility", "private") == "private" or dependency.get("show_api") is False
            tab = next(c for c in config["components"] if c.get("type") == "tabitem"
                       and c["props"].get("label") == tab_label)
            assert tab["props"]["id"] is not None
            seen.add(button)
    assert seen == set(buttons)


def test_sending_nothing_says_so_and_a_playlist_keeps_its_tracks():
    import gradio as gr

    from ui import send_to

    with pytest.raises(gr.Error, match="Nothing to send yet"):
        send_to._sender("spectrogram", append=False)(None)
    tracks, tabs = send_to._sender("playlist", append=True)("/tmp/new.wav", ["/tmp/a.wav"])
    assert tracks == ["/tmp/a.wav", "/tmp/new.wav"] and tabs.selected == "playlist"
    assert send_to._sender("playlist", append=True)("/tmp/a.wav", ["/tmp/a.wav"])[0] == ["/tmp/a.wav"]
