"""The app as an MCP server (launch(mcp_server=True), on by default): every main endpoint is a tool whose
parameters are described in the user's words, files are taken as URLs, and an MCP client over HTTP lists
the tools and calls them."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest
import soundfile as sf

from fake_servers import FakeGitHub

# every endpoint a person runs; /status and /download_session take no parameters
MAIN_TOOLS = {"preview_mask", "masked_img2img", "describe_music", "music_to_image", "style_interpolation",
              "text_to_music", "interpolate_prompts", "image_to_music", "recommend_songs", "playlist_to_music",
              "audio_to_spectrogram", "spectrogram_to_audio"}
FILE_PARAMETERS = {"audio_path", "image_path", "melody_path", "files"}


@pytest.fixture(scope="module")
def mcp_app(studio):
    """The tiny app launched as app.start launches it, MCP on; yields its URL."""
    import app
    from conftest import free_port

    demo = app.queue(app.build_demo(studio))
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, mcp_server=True,
                **app.LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def test_flag_and_environment_switch_mcp_off(monkeypatch):
    import app

    assert app.parse_args([]).mcp is True
    assert app.parse_args(["--no-mcp"]).mcp is False
    monkeypatch.setenv("STUDIO_MCP", "0")
    assert app.parse_args([]).mcp is False


def test_schema_lists_every_main_endpoint_with_each_parameter_described(mcp_app):
    schema = httpx.get(f"{mcp_app}gradio_api/mcp/schema", timeout=60).json()
    tools = {tool["name"]: tool for tool in schema}
    assert MAIN_TOOLS <= set(tools)
    # every tool is named as its API endpoint (gradio names tools after the handler function)
    info = httpx.get(f"{mcp_app}gradio_api/info", timeout=60).json()
    endpoints = {name.lstrip("/") for name in info["named_endpoints"]}
    assert set(tools) <= endpoints, set(tools) - endpoints
    undescribed = {name: [p for p, spec in tool["inputSchema"]["properties"].items()
                          if len(spec.get("description", "")) < 15] for name, tool in tools.items()}  # every tool
    assert {name: params for name, params in undescribed.items() if params} == {}
    for name in MAIN_TOOLS:
        assert len(tools[name]["description"]) >= 30
        for parameter, spec in tools[name]["inputSchema"]["properties"].items():
            if parameter in FILE_PARAMETERS:  # files travel as URLs, and the description says so
                assert "URL" in spec["description"], (name, parameter)


async def _list_and_call(url: str, calls: list[tuple[str, dict]]):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamablehttp_client

    async with streamablehttp_client(f"{url}gradio_api/mcp/") as (read, write, _):
        async with ClientSession(read, write) as session:
            await session.initialize()
            listed = await session.list_tools()
            results = [await session.call_tool(name, arguments) for name, arguments in calls]
            return listed.tools, results


def test_an_mcp_client_lists_the_tools_and_calls_them_with_a_file_url(mcp_app, tmp_path, monkeypatch):
    """Over HTTP (streamable HTTP transport): text to music from words, and describe_music given a WAV's URL."""
    from gradio import processing_utils

    github = FakeGitHub()  # any web server will do to hand out the file's URL
    # gradio fetches URLs from public hosts only (SSRF guard): this local server stands for one
    monkeypatch.setattr(processing_utils, "PUBLIC_HOSTNAME_WHITELIST", [*processing_utils.PUBLIC_HOSTNAME_WHITELIST,
                                                                        "127.0.0.1"])
    try:
        tone = tmp_path / "tone.wav"
        sf.write(tone, 0.5 * np.sin(2 * np.pi * 440 * np.arange(2 * 22050) / 22050), 22050)
        wav_url = github.add("raw", "someone/music", "0" * 40, "tone.wav", tone.read_bytes())
        tools, (music, described) = asyncio.run(_list_and_call(mcp_app, [
            ("text_to_music", {"prompt": "funk bassline", "negative_prompt": "", "seconds": 1.0, "steps": 2,
                               "guidance": 7.0, "seed": 5, "model": "riffusion"}),
            ("describe_music", {"audio_path": wav_url}),
        ]))
    finally:
        github.close()
    assert MAIN_TOOLS <= {tool.name for tool in tools}
    assert not music.isError and not described.isError, (music.content, described.content)
    texts = " ".join(getattr(part, "text", "") or "" for part in described.content)
    assert "This piece of music falls under the" in texts  # the sentence made from the sound at that URL
    assert ("/raw/someone/music/" + "0" * 40 + "/tone.wav") in [path for _, path in github.requests]
    music_parts = json.dumps([part.model_dump(mode="json") for part in music.content])
    assert ".wav" in music_parts  # the music comes back as a file


def test_mcp_callers_reach_the_app_without_a_session_of_their_own(mcp_app, monkeypatch):
    """What a tool's handler can tell MCP callers apart by: nothing per client. gradio's MCP server is
    stateless (streamable HTTP with no ``mcp-session-id``; over SSE the session is a query parameter,
    and only headers are passed on) and runs a queued tool through one gradio client of its own, so two
    MCP clients reach the handler with the same session hash and no header naming their MCP session:
    they share one session (docs/FEATURES.md, "Without a page"). If this fails, gradio now passes
    something per client: key the session on it."""
    from ui import history_tab

    seen = []
    session_of = history_tab.session_of

    def recording(request=None):
        seen.append((getattr(request, "session_hash", None), {name.lower() for name in request.headers}))
        return session_of(request)

    monkeypatch.setattr(history_tab, "session_of", recording)
    for _ in range(2):  # two MCP clients, one after the other, each its own connection and MCP session
        asyncio.run(_list_and_call(mcp_app, [("download_session", {})]))
    assert len(seen) == 2, seen
    assert seen[0][0] is not None and seen[0][0] == seen[1][0]
    assert not {"mcp-session-id", "x-gradio-session-hash"} & (seen[0][1] | seen[1][1]), seen
