"""Variations tab: one request with 2-8 seeds, side by side (endpoint ``/variations``).

The endpoint returns every variation's WAV (seed order) and their seeds; the page then lays them out,
each with "Use this" (its seed goes into the seed box, so the next run remakes it) and Send to, and
shows the first (the seed box's) as the chosen one, beside the button.
"""

from __future__ import annotations

import gradio as gr

from pipelines.schema import limits
from pipelines.schema.outputs import new_output_dir, save_result
from pipelines.schema.settings import ImageToMusicSettings, TextToMusicSettings
from pipelines.systems.variations import ENGINES

from .common import model_event, progress_callback, prompt_box, run_and_cancel_buttons, seed_control, slider
from .common import refusal, start_run
from .errors import user_errors
from . import binding
from .binding import settings_from
from .send_to import AUDIO, buttons

ENGINE_LABELS = {"riffusion": "Riffusion", "musicgen": "MusicGen"}  # both text to music
# each engine's settings; an unknown engine gets Riffusion's, and the Studio refuses it in our words
ENGINE_SETTINGS = {"riffusion": TextToMusicSettings, "musicgen": ImageToMusicSettings}
SLOTS = int(limits.VARIATION_SEEDS.high)
PER_ROW = 4


def engine_settings(values: dict) -> TextToMusicSettings | ImageToMusicSettings:
    """The chosen engine's settings, each field filled from the argument of its name (``settings_from``);
    an empty ``guidance`` (None) is that engine's own default (7 Riffusion, 3 MusicGen). Not validated."""
    cls = ENGINE_SETTINGS.get(values.get("engine"), TextToMusicSettings)
    if values.get("guidance") is None:
        values = {**values, "guidance": cls.default("guidance")}
    return settings_from(cls, values)


def build(studio) -> None:
    @user_errors
    def variations(prompt, engine, seconds, seed, count, steps, guidance, progress=gr.Progress(track_tqdm=True)):
        """The same text-to-music request made with 2 to 8 seeds, each equal to the single call with its seed.

        Args:
            prompt: The music to hear, in words, for example "funk bassline with a jazzy saxophone solo".
            engine: Which model makes it: "riffusion" (Riffusion text to music) or "musicgen" (MusicGen).
            seconds: Length of each variation in seconds.
            seed: The first seed; the others follow it (seed + 1, seed + 2, ...).
            count: How many variations (seeds), 2 to 8.
            steps: Denoising steps per Riffusion window (MusicGen ignores it).
            guidance: Classifier-free guidance scale; empty for the engine's default (7 Riffusion, 3 MusicGen).
        """
        settings = engine_settings(locals())
        flag = start_run(studio)
        made = studio.variations(engine, settings, count, prompt=prompt, on_progress=progress_callback(progress),
                                 should_stop=flag.is_set)
        folder = new_output_dir()
        files = [save_result(result, f"variation-{index + 1}-seed-{seed}", folder).audio
                 for index, (result, seed) in enumerate(zip(made.results, made.seeds))]
        return files, made.seeds

    def show(files, seeds):
        """Each slot's column, player and seed; last, the chosen player: the first variation, whose seed
        is the one in the seed box (a player with a result in the first screen)."""
        files, seeds = list(files or []), list(seeds or [])
        updates = []
        for index in range(SLOTS):
            here = index < len(files)
            path = getattr(files[index], "name", files[index]) if here else None
            updates.append(gr.Column(visible=here))
            updates.append(gr.Audio(value=path, label=f"Seed {seeds[index]}" if here else "Variation"))
            updates.append(seeds[index] if here else None)
        first = getattr(files[0], "name", files[0]) if files else None
        return updates + [first]

    def use(seed, path):
        if seed is None:
            raise refusal("Nothing to use yet: make variations first.")
        return seed, path

    def gpu_seconds(*args, **kwargs) -> int:
        """ZeroGPU's duration: one variation's estimate (its engine's settings, bound by name) x count;
        arguments that give no number get the worst case, the longest Riffusion request x the most seeds."""
        values = binding.arguments(variations, args, kwargs)
        try:
            return engine_settings(values).gpu_seconds() * int(values["count"])
        except (TypeError, ValueError):
            return TextToMusicSettings(seconds=TextToMusicSettings.RANGES["seconds"].high,
                                       steps=TextToMusicSettings.RANGES["steps"].high).gpu_seconds() * SLOTS

    with gr.Tab("Variations"):
        gr.Markdown(
            f"The same request with 2 to {SLOTS} seeds (the seed below and the ones after it), side by side. Each "
            "variation is exactly what that seed alone gives. The first is the chosen one to begin with; Use this "
            "puts another's seed in the seed box (and makes it the chosen one), so the Text to music or Image to "
            "music tab remakes it with that seed, longer if you like. Riffusion denoises the seeds' first windows "
            "in one batch where GPU memory allows; MusicGen makes one after the other.",
            elem_classes=["studio-intro"],
        )
        # The prompt, engine, length, count and seed, the button and the chosen variation in the first
        # screen; the sampling settings folded below the button, the variations side by side under it all
        with gr.Row():
            with gr.Column():
                prompt = prompt_box(binding.label(TextToMusicSettings, "prompt"), TextToMusicSettings.default("prompt"))
                with gr.Row():
                    engine = gr.Radio([(ENGINE_LABELS[key], key) for key in ENGINES], value=ENGINES[0],
                                      label="Engine", min_width=240)
                    seconds = slider(TextToMusicSettings, "seconds", 0.5, "s", min_width=240)
                count = gr.Slider(limits.VARIATION_SEEDS.low, limits.VARIATION_SEEDS.high, value=4, step=1, precision=0,
                                  label="Variations (seeds)")
                seed = seed_control(TextToMusicSettings)
                run, stop = run_and_cancel_buttons("Make variations")
                with gr.Accordion("Sampling", open=False):
                    steps = slider(TextToMusicSettings, "steps", 1, "Riffusion")
                    guidance = gr.Number(value=None, minimum=limits.GUIDANCE.low, maximum=limits.GUIDANCE.high,
                                         label="Guidance (empty: the engine default, 7 Riffusion, 3 MusicGen)")
            with gr.Column():
                chosen = gr.Audio(label="Chosen variation", type="filepath", interactive=False,
                                  elem_id="variations-chosen")
                buttons(chosen, AUDIO)
                files = gr.File(label="All variations (WAV)", file_count="multiple", height=160, interactive=False)
                seeds = gr.JSON(label="Seeds", visible=False)
        slots = []
        for row in range(0, SLOTS, PER_ROW):
            with gr.Row():
                for index in range(row, row + PER_ROW):
                    with gr.Column(visible=False, min_width=200) as column:
                        audio = gr.Audio(label="Variation", type="filepath", interactive=False)
                        slot_seed = gr.State(None)
                        pick = gr.Button("Use this", size="sm")
                        buttons(audio, AUDIO)
                    pick.click(use, [slot_seed, audio], [seed, chosen], queue=False, api_visibility="private")
                    slots += [column, audio, slot_seed]
        inputs = binding.inputs(variations, {"prompt": prompt, "engine": engine, "seconds": seconds, "seed": seed,
                                             "count": count, "steps": steps, "guidance": guidance})
        event = model_event(studio, run, variations, inputs, [files, seeds], api_name="variations",
                            api_description="The same text-to-music request with 2-8 seeds (seed, seed+1, ...): "
                                            "every variation's WAV and its seed, each equal to the single call.",
                            gpu_seconds=gpu_seconds, stop=stop)
        event.then(show, [files, seeds], slots + [chosen], api_visibility="private")
