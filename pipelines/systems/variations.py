"""Variations: one request made with N seeds (2-8), to pick from side by side.

The seeds are the first seed and the ones after it (seed, seed + 1, ... modulo 2**32), and each
variation is exactly the result of the single request with its seed, so a chosen one can be made
again, longer or extended, from its seed alone.

* **Riffusion** text to music: the first window of every seed is denoised in one UNet batch where
  memory allows (``windows.window_batch_size``: on CUDA cards of 40 GiB and more, as many as fit at
  1 GiB each, at most 4 at a time; one at a time on the CPU, or ``STUDIO_WINDOW_BATCH=N``). Each
  seed's start noise comes from its own CPU generator and the scheduler draws nothing more, so a
  batched window differs from the single one only by float rounding (at most one grey level in a
  spectrogram pixel). Later windows of each seed continue it as ``text_to_music`` does.
* **MusicGen** (a prompt, as image to music with a written prompt): one seed after the other.
  Its sampling draws every row of a batch from one random stream, so a batch could not give each
  seed its single-call result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core.errors import InputError, concerning_parameter

from pipelines.schema import limits
from pipelines.schema.results import Result

ENGINES = ("riffusion", "musicgen")


def seeds_from(first: int, count: int) -> list[int]:
    """``count`` seeds starting at ``first``: first, first + 1, ... modulo 2**32. InputError when
    ``first`` is not a seed or ``count`` is outside ``limits.VARIATION_SEEDS`` (2-8)."""
    limits.SEED.check("seed", first)
    limits.VARIATION_SEEDS.check("variations", count)  # the page's "Variations (seeds)"
    return [(int(first) + index) % (int(limits.SEED.high) + 1) for index in range(int(count))]


@dataclass
class Variations(Result):
    """The variations in seed order; each keeps its own parameters (its seed among them)."""

    results: list[Result]
    seeds: list[int]


def _scaled(on_progress: Callable[[float, str], None] | None, index: int, count: int):
    if on_progress is None:
        return None
    return lambda fraction, message: on_progress((index + fraction) / count,
                                                 f"variation {index + 1} of {count}: {message}")


def variations(studio, engine: str, settings: Any, count: int, *, prompt: str | None = None,
               on_progress: Callable[[float, str], None] | None = None,
               should_stop: Callable[[], bool] | None = None) -> Variations:
    """``count`` variations of one request, ``settings.seed`` the first seed.

    Args:
        studio: the ``pipelines.studio.Studio`` that runs the models.
        engine: "riffusion" (``settings``: ``TextToMusicSettings``) or "musicgen" (``settings``:
            ``ImageToMusicSettings``, ``prompt``: the music prompt).
        count: 2 to 8 (``limits.VARIATION_SEEDS``).

    Returns each seed's result (what ``studio.text_to_music`` or ``studio.image_to_music`` gives
    for that seed), with ``parameters["variation"]`` its index. Raises InputError for an unknown
    engine, bad settings or count, before any model loads.
    """
    if engine not in ENGINES:
        raise InputError(f"Unknown engine {engine!r}: use one of {', '.join(ENGINES)}.")
    settings.validate()
    seeds = seeds_from(settings.seed, count)
    if engine == "musicgen":
        with concerning_parameter("prompt"):  # the endpoint's parameter too: the app names it
            limits.check_text("prompt", prompt, hint="write what the music should be")
        results = [studio.image_to_music(None, prompt, dataclasses.replace(settings, seed=seed),
                                         on_progress=_scaled(on_progress, index, len(seeds)), should_stop=should_stop)
                   for index, seed in enumerate(seeds)]
    else:
        results = studio.manager.run("riffusion", lambda pipe: _riffusion(studio, pipe, settings, seeds, on_progress,
                                                                          should_stop))
        for result in results:
            result.parameters["model"] = "riffusion"
    for index, result in enumerate(results):
        result.parameters["variation"] = index
    return Variations(results=results, seeds=seeds,
                      parameters={"pipeline": "variations", "engine": engine, "seeds": seeds, "model": engine})


def _riffusion(studio, pipe, settings, seeds: list[int], on_progress, should_stop) -> list[Result]:
    import torch

    from pipelines.systems import text_to_music as t2m
    from pipelines.signal.windows import window_batch_size

    batch = window_batch_size(studio.device, len(seeds))
    results: list[Result] = []
    with torch.no_grad():
        cond, uncond = t2m.encode_prompts(pipe, settings.prompt, settings.negative_prompt)
        for start in range(0, len(seeds), batch):
            chunk = seeds[start : start + batch]
            firsts: list[Any] = [None] * len(chunk)
            if len(chunk) > 1:
                noise = torch.cat([t2m.start_noise(pipe, seed) for seed in chunk])
                firsts = t2m.generate_windows(pipe, cond, uncond, noise, settings.steps, settings.guidance, should_stop)
            for offset, (seed, first) in enumerate(zip(chunk, firsts)):
                index = start + offset
                results.append(t2m.text_to_music(pipe, dataclasses.replace(settings, seed=seed), device=studio.device,
                                                 on_progress=_scaled(on_progress, index, len(seeds)),
                                                 should_stop=should_stop, first_window=first))
    return results
