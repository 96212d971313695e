"""About tab: profile, device, the models in memory and where each role loads from (endpoint ``/status``)."""

from __future__ import annotations

import re

import gradio as gr

from pipelines.models import originals

# The published systems this app hosts: (tab, work, links). The README's "Sources" lists the same links.
SYSTEMS = (
    ("Sound to music", "Mask-Based Diffusion for Music Generation From Everyday Sounds (ECAI'25)",
     (("code", "https://github.com/CappiePappies/Mask-Based-Diffusion-for-Music-Generation-From-Everyday-Sounds"),
      ("project page", "https://cappiepappies.github.io/"))),
    ("Style interpolation", "Style Embedding Interpolation in Music Generation, on MusicTI (AAAI 2024)",
     (("code", "https://github.com/kariander1/interp-music-style"),
      ("project page", "https://kariander1.github.io/interp-music-style/"),
      ("MusicTI code", "https://github.com/lsfhuihuiff/MusicTI_AAAI2024"))),
    ("Music to image", "TechJam music-to-image (genre and emotion CNNs, tempo, Stable Diffusion with a LoRA)",
     (("code", "https://github.com/Derek327783/TechJam"),
      ("emotion model's base paper", "https://arxiv.org/pdf/1907.03572"))),
    ("Image to music", "MusicGenAI (BLIP captions to MusicGen, song suggestions)",
     (("code", "https://github.com/CrypticOwl5503/MusicGenAI"),
      ("MusicGen paper", "https://arxiv.org/abs/2306.05284"))),
    ("Playlist to music", "AMUSE: a VAE-conditioned music diffusion model",
     (("code", "https://github.com/alppotuk/AMUSE"),
      ("model", "https://huggingface.co/alppo/vae-conditioned-diffusion-model_v2"))),
    ("Spectrogram", "Riffusion's spectrogram images", (("code", "https://github.com/riffusion/riffusion"),)),
)


ORIGINALS_NOTE = (
    "### The originals' own files, fetched from GitHub\n"
    "TechJam's classifiers and LoRA and MusicTI's accordion and chime styles are not on the Hugging Face Hub: "
    "they are downloaded from the authors' GitHub repositories at the commit below when a tab first needs them, "
    "checked against the recorded checksum, and kept in this machine's cache. **TechJam publishes no licence**: "
    "its files come straight from its repository onto the machine running this app, for your own use; this app "
    "never ships or re-hosts them. A copy of your own can replace any of them (docs/MODELS.md says how)."
)


def original_files() -> list[list[str]]:
    """One row per original file: role, file, source page, commit, licence, checksum, state (no download)."""
    return [[r["role"], r["file"], r["source"], r["commit"], r["licence"], r["pin"], r["state"]]
            for r in originals.describe()]


def sources_markdown() -> str:
    rows = [f"- **{tab}**: {work}: " + ", ".join(f"[{name}]({url})" for name, url in links)
            for tab, work, links in SYSTEMS]
    return "### Where each tab comes from\n" + "\n".join(rows)


def build(studio) -> None:
    def summary(info: dict) -> str:
        tiny_note = (
            "\n\n**Tiny profile:** every model is a tiny random-weight stand-in built on this machine. "
            "Everything runs end to end, but the output is noise."
            if info["profile"] == "tiny"
            else ""
        )
        missing = "".join(
            f"\n- **{row['model']}** (needed by {', '.join(row['tabs']) or 'no tab'}): {row['message']}"
            for row in info.get("unavailable", [])
        )
        missing_note = f"\n\n**Not loaded at start** (the other tabs work):{missing}" if missing else ""
        return (
            f"**Profile:** `{info['profile']}` · **Device:** `{info['device']}` ({info['dtype']})"
            f"{' · ZeroGPU' if info['zero_gpu'] else ''}{tiny_note}{missing_note}"
        )

    def loaded_models(info: dict) -> list[list]:
        return [[r["name"], r["where"], r["mb"], r["uses"], r["load_s"]] for r in info["models"]]

    def roles(info: dict) -> list[list]:
        # a pinned revision shortened to its first 8 hex digits, as git does (the full one: README, models.py)
        return [[r["role"], re.sub(r"@([0-9a-f]{8})[0-9a-f]{32}\b", r"@\1", r["source"]), r["purpose"]]
                for r in info["roles"]]

    def status():  # named as its endpoint: gradio names the MCP tool after the function
        info = studio.describe()
        return summary(info), loaded_models(info)

    def residency(info: dict) -> str:
        """How models come and go on this device (the device manager's rule, in words)."""
        if info["device"] == "cpu":
            return ("Models load on first use and stay in memory; past the memory budget the one used least "
                    "recently is dropped, and loads again when a tab needs it.")
        if studio.manager.eviction == "offload":
            return (f"Models load on first use; when others need room on the GPU ({info['device']}), the one used "
                    "least recently moves back to the CPU, ready to return.")
        return (f"Models load on first use; when others need room on the GPU ({info['device']}), the one used "
                "least recently is dropped, and loads again when a tab needs it.")

    info = studio.describe()
    with gr.Tab("About") as tab:
        info_md = gr.Markdown(summary(info), label="Summary")
        gr.Markdown(f"### Models in memory\n{residency(info)} The table is current each time this tab opens.")
        models_df = gr.Dataframe(value=loaded_models(info), label="Models in memory",
                                 headers=["model", "where", "MB", "uses", "load (s)"], interactive=False, wrap=True,
                                 elem_classes=["studio-table"])
        button = gr.Button("Refresh", size="sm")
        button.click(status, outputs=[info_md, models_df], api_name="status",
                     api_description="The profile, the device, and the models in memory with their sizes.")
        tab.select(status, outputs=[info_md, models_df], api_visibility="private")  # current without a click
        gr.Markdown("### Where each model comes from")
        gr.Dataframe(value=roles(info), headers=["role", "source", "purpose"], interactive=False, wrap=True,
                     column_widths=["170px", "340px", "690px"], elem_classes=["studio-table"])
        gr.Markdown(ORIGINALS_NOTE)
        gr.Dataframe(value=original_files(), headers=["role", "file", "source", "commit", "licence", "checksum", "state"],
                     interactive=False, wrap=True, label="Original files fetched from GitHub",
                     elem_classes=["studio-table"])
        gr.Markdown(sources_markdown())
