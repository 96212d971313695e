"""About tab: profile, device, the models in memory and where each role loads from (endpoint ``/status``)."""

from __future__ import annotations

import gradio as gr


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
        return [[r["role"], r["source"], r["purpose"]] for r in info["roles"]]

    def refresh():
        info = studio.describe()
        return summary(info), loaded_models(info)

    info = studio.describe()
    with gr.Tab("About"):
        info_md = gr.Markdown(summary(info), label="Summary")
        gr.Markdown("### Models in memory\nModels load on first use and move off the GPU when others need room.")
        models_df = gr.Dataframe(value=loaded_models(info), label="Models in memory", headers=["model", "where", "MB", "uses", "load (s)"],
                                 interactive=False)
        button = gr.Button("Refresh", size="sm")
        button.click(refresh, outputs=[info_md, models_df], api_name="status")
        gr.Markdown("### Where each model comes from")
        gr.Dataframe(value=roles(info), headers=["role", "source", "purpose"], interactive=False)
