"""The studio: the facade the UI calls, one short method per action, each routing to the module that
owns the job.

app.py builds one ``Studio`` and calls its actions with plain Python values; it never sees a torch
device. What the actions share (registry, device manager, loaders, ZeroGPU preload, warm-up, CLAP
metrics) is ``host.ModelHost``; the models are declared in ``roles.ROLES``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.errors import InputError

from pipelines.signal import audio as audio_io
from pipelines.schema import limits
from pipelines.models import roles
from pipelines.signal import spectrogram, windows
from pipelines.models import lora as adapters
from pipelines.host import TAB_MODELS, ModelHost, StudioInfo  # noqa: F401  (TAB_MODELS, StudioInfo: their readers import them here)
from pipelines.models.loaders import import_model_libraries
from pipelines.schema.results import Result, SongRecommendationResult, SpectrogramResult


def _model_choices(tab: str, default: str) -> tuple[str, ...]:
    """The Stable Diffusion roles ``tab`` can run on (role table), ``default`` first."""
    names = [name for name in roles.tab_roles(tab) if roles.ROLES[name].loader == "sd_img2img"]
    return tuple(sorted(names, key=lambda name: name != default))


# Models the sound-to-music tab can run on: the paper's fine-tune first, plain Riffusion second.
SOUND_TO_MUSIC_MODELS = _model_choices(roles.SOUND_TO_MUSIC, "mask_model")
CLASSIFIER_ROLES = ("genre_classifier", "emotion_classifier")
# Models Riffusion's text to music can run on (both are SD 1.x fine-tunes on riffusion spectrograms)
TEXT_TO_MUSIC_MODELS = _model_choices(roles.TEXT_TO_MUSIC, "riffusion")


def _preset(name: str):
    if name not in spectrogram.PRESETS:
        raise InputError(f"Unknown spectrogram preset {name!r}: use one of {', '.join(spectrogram.PRESETS)}.")
    return spectrogram.PRESETS[name]


def _made_by(result: Result, model: str | None) -> Result:
    """Record the registry role(s) that made ``result`` next to its parameters."""
    result.parameters["model"] = model
    return result


class Studio(ModelHost):
    """The actions: inputs and a settings dataclass in, the pipeline's result out (``ModelHost``: the rest)."""

    # -- pipelines ----------------------------------------------------------------------------------
    # Each method takes the inputs (audio, pictures, text) and the pipeline's settings dataclass,
    # validates the settings first, once per request (before any audio decode or model load; the
    # pipeline's own guard is then free, see ``limits.Settings.validate``), plans a sound's windows
    # once and passes the plan down, and returns the pipeline's result with the registry role that
    # made it in ``parameters["model"]``.

    def audio_to_spectrogram(self, audio_source: Any, preset: str, stereo: bool = False) -> SpectrogramResult:
        """A whole sound as one spectrogram image (with its metadata), on the studio's device."""
        params = _preset(preset)
        if stereo and params.name != "riffusion":  # the RGB stereo layout is riffusion's
            raise InputError(f"Stereo spectrograms exist only in the riffusion preset, not {preset}.")
        sound = self.load_input_audio(audio_source, params.sample_rate, channels=2 if stereo else 1)
        image = spectrogram.audio_to_image(sound.samples, params, device=self.signal_device)
        return SpectrogramResult(image=image, params=params,
                                 parameters={"pipeline": "audio_to_spectrogram", "model": None, "preset": params.name,
                                             "stereo": bool(stereo)})

    def spectrogram_to_audio(self, image: Any, preset: str | None = None) -> SpectrogramResult:
        """Peak-normalised sound (channels, n) of a spectrogram image; preset None reads the image's metadata."""
        params = None if preset is None else _preset(preset)
        samples = spectrogram.image_to_audio(image, params, device=self.signal_device)
        params = params or spectrogram.read_metadata(image)["params"]
        return SpectrogramResult(image=image, params=params, audio=audio_io.peak_normalize(samples, headroom_db=1.0),
                                 sample_rate=params.sample_rate,
                                 parameters={"pipeline": "spectrogram_to_audio", "model": None, "preset": params.name})

    def preview_mask(self, audio_source: Any, mask_settings) -> Result:
        """The input's spectrogram and its change map, without any diffusion (fast, CPU side)."""
        from pipelines.systems import masked_img2img

        mask_settings.validate()  # before the audio decode
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        return _made_by(masked_img2img.preview_mask(sound.samples, mask_settings), None)

    def sound_to_music(
        self,
        audio_source: Any,
        settings,
        model: str = "mask_model",
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        clap: bool | None = False,
        session: str | None = None,
    ):
        """Everyday sound -> music in the prompt's style (masked img2img on Riffusion spectrograms).

        ``settings``: ``masked_img2img.SoundToMusicSettings``; ``model``: one of SOUND_TO_MUSIC_MODELS.
        ``settings.lora`` at a ``lora_scale`` above 0: "" the installed genre LoRA (role ``s2m_lora``),
        else one of ``genre_loras(session)`` (a LoRA this session trained, or a shared one).
        The result's metrics: SSIM and chroma CENS of input and output, and with ``clap`` (None: the
        device's default, ``metrics_by_default``) the CLAP score and content preservation.
        """
        import_model_libraries()
        from pipelines.systems import masked_img2img

        if model not in SOUND_TO_MUSIC_MODELS:
            raise InputError(f"Unknown model {model!r}: use one of {', '.join(SOUND_TO_MUSIC_MODELS)}.")
        settings.validate()  # before the (slow) audio decode and model load
        lora, adapter = self._genre_lora(settings, session)
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        plan = windows.plan_windows(sound.samples.shape[-1], spectrogram.RIFFUSION)  # once per request

        def render(pipe):
            with adapters.switched_on(pipe, lora, settings.lora_scale, adapter):
                return masked_img2img.render_with_model(
                    pipe, sound.samples, settings, device=self.device, plan=plan, on_progress=on_progress,
                    should_stop=should_stop, batch_size=windows.window_batch_size(self.device, plan.count))

        rendered = self.manager.run(model, render)
        # metrics, image strips and normalising need no GPU: outside its lock, the next request runs
        result = masked_img2img.finish(rendered, settings)
        if lora is not None:
            result.parameters["lora"] = settings.lora or lora  # a trained one by name: no folder paths
        self._clap_metrics(result, clap, content=sound, prompt=settings.prompt)
        return _made_by(result, model)

    def _genre_lora(self, settings, session: str | None) -> tuple[str | None, str]:
        """(folder, adapter name) of the genre LoRA ``settings`` asks for; (None, ...) at scale 0.
        A trained one gets an adapter name of its own (``lora.trained_adapter``), dropped after the run."""
        if not settings.lora_scale or not settings.lora:
            location = self.optional_location("s2m_lora", bool(settings.lora_scale), "Or set the genre LoRA scale to 0.")
            return location, adapters.GENRE_ADAPTER
        offered = self.genre_loras(session)
        if settings.lora not in offered:
            names = ", ".join(["'' (the installed one)", *map(repr, offered)])
            raise InputError(f"Unknown genre LoRA {settings.lora!r}: choose from {names}. A LoRA trained in the "
                             "Train tab is offered to the session that trained it.")
        return offered[settings.lora], adapters.trained_adapter(offered[settings.lora])

    def describe_music(self, audio_source: Any):
        """Genre, emotion and tempo of a whole track, and the sentence that prompts the image (CPU side)."""
        import_model_libraries()
        from pipelines.systems import music_to_image

        sound = self.load_input_audio(audio_source, music_to_image.SAMPLE_RATE)
        genre_model, emotion_model = (self.manager.get_cpu(role).model for role in CLASSIFIER_ROLES)
        described = music_to_image.describe_music(sound.samples, music_to_image.SAMPLE_RATE, genre_model, emotion_model)
        return _made_by(described, "+".join(CLASSIFIER_ROLES))

    def music_to_image(
        self,
        audio_source: Any,
        description: str | None = None,
        settings=None,
        *,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Sound -> picture. ``description`` replaces the generated sentence when given (non-empty).

        ``settings``: ``music_to_image.MusicToImageSettings`` (None: its defaults). The result's
        ``description`` is the ``Description`` made from the audio, or None when the caller's text was used.
        """
        import_model_libraries()
        from pipelines.systems import music_to_image

        settings = (settings or music_to_image.MusicToImageSettings()).validate()  # before the slow description
        text = limits.optional_text("description", description)  # as the page names it
        if not text and audio_source is None:
            raise InputError("Give a piece of music to describe, or write a description.")
        lora = self.optional_location("m2i_lora", bool(settings.lora_scale),
                                      "Or set the LoRA scale to 0 for plain Stable Diffusion 1.5.")
        prompt = text or self.describe_music(audio_source)

        return _made_by(self.manager.run("sd15", lambda pipe: music_to_image.generate_image(
            adapters.loaded(pipe, lora), prompt, settings, should_stop=should_stop)), "sd15")

    def _caption(self, image: Any) -> str:
        import_model_libraries()
        from pipelines.systems import image_to_music

        picture = image_to_music.load_image(image)
        return self.manager.run("blip", lambda blip: image_to_music.caption_image(blip.model, blip.processor, picture))

    def image_to_music(
        self,
        image: Any,
        prompt: str | None = None,
        settings=None,
        melody: Any = None,
        *,
        should_stop: Callable[[], bool] | None = None,
        on_progress: Callable[[float, str], None] | None = None,
        clap: bool | None = False,
    ):
        """Picture -> caption (BLIP) -> music (MusicGen). ``prompt`` replaces the caption when given.
        With ``clap`` (None: the device's default) the result's metrics hold the CLAP score against
        the prompt used.

        ``settings``: ``image_to_music.ImageToMusicSettings`` (None: its defaults). ``melody``: a tune
        (path, gradio audio tuple or ``Audio``; any rate, at most ``MAX_INPUT_SECONDS``, its first 30 s
        are used) that MusicGen-melody follows instead of musicgen-small making its own. The result's
        ``prompt`` is the caption or the caller's prompt.
        """
        import_model_libraries()
        from pipelines.systems import image_to_music

        settings = (settings or image_to_music.ImageToMusicSettings()).validate()  # before the caption
        text = limits.optional_text("music prompt", prompt)
        chroma = None
        if melody is not None:  # the tune is checked before any model loads
            from pipelines.systems.melody import melody_chroma

            chroma = melody_chroma(audio_io.load_audio(melody, 32000, min_seconds=None, allow_silence=True))
            image_to_music.check_melody_length(settings)
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a music prompt.")
            text = self._caption(image)
        role = "musicgen" if chroma is None else "musicgen_melody"
        result = self.manager.run(
            role,
            lambda gen: image_to_music.generate_music(gen.model, gen.processor, text, settings, melody=chroma,
                                                      should_stop=should_stop, on_progress=on_progress),
        )
        self._clap_metrics(result, clap, prompt=result.prompt)
        return _made_by(result, role)

    def recommend_songs(self, image: Any = None, caption: str | None = None, k: int = 10) -> SongRecommendationResult:
        """The top-k songs whose lyric lines are closest in meaning to the caption (the picture's, or the caller's)."""
        import_model_libraries()
        from pipelines.systems import song_recommendation

        limits.SONG_COUNT.check("number of songs", k)
        text = limits.optional_text("music prompt", caption)  # as the page names it
        if not text:
            if image is None:
                raise InputError("Give a picture to caption, or write a caption.")
            text = self._caption(image)
        matches = self.manager.run(
            "sentence_embedder",
            lambda emb: song_recommendation.recommend(emb.model, emb.processor, None, text, k=int(k)),
        )
        return SongRecommendationResult(caption=text, matches=matches,
                                        parameters={"pipeline": "recommend_songs", "model": "sentence_embedder",
                                                    "caption": text, "k": int(k)})

    def style_interpolation(
        self,
        audio_source: Any,
        style_names: list[str],
        weights: list[float] | None = None,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        clap: bool | None = False,
        session: str | None = None,
    ):
        """Content audio rendered in a weighted mix of learned styles, on the shared Riffusion model.

        ``settings``: ``style_interpolation.StyleInterpolationSettings`` (None: MusicTI's defaults).
        ``style_names``: built-in styles or those ``session`` trained (``style_names(session)``).
        With ``clap`` (None: the device's default) the result's metrics hold MusicTI's content
        preservation and style fit (mean and max over the styles).
        """
        import_model_libraries()
        from pipelines.systems import style_interpolation

        if not isinstance(style_names, (list, tuple)) or not all(isinstance(n, str) for n in style_names):
            raise InputError("Pick one to four styles by name.")
        style_interpolation.check_style_mix(list(style_names), weights)
        settings = (settings or style_interpolation.StyleInterpolationSettings()).validate()
        styles = self.styles(list(style_names), session)
        sound = self.load_input_audio(audio_source, spectrogram.RIFFUSION.sample_rate)
        plan = windows.plan_windows(sound.samples.shape[-1], spectrogram.RIFFUSION)  # once per request
        result = self.manager.run(
            "riffusion",
            lambda pipe: style_interpolation.apply_styles(pipe, sound.samples, styles, weights, settings,
                                                          should_stop=should_stop, device=self.device,
                                                          on_progress=on_progress, plan=plan,
                                                          batch_size=windows.window_batch_size(self.device, plan.count)),
        )
        self._clap_metrics(result, clap, content=sound, styles=list(style_names))
        return _made_by(result, "riffusion+music_styles")

    def playlist_to_music(
        self,
        tracks: Any,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        clap: bool | None = False,
    ):
        """A playlist's taste (AMUSE VAE) conditions a spectrogram diffusion model: new music at 22.05 kHz.

        ``settings``: ``playlist_to_music.PlaylistToMusicSettings`` (None: its defaults). With
        ``clap`` (None: the device's default) the result's metrics hold the playlist similarity,
        measured on the tracks as decoded for the model (mono 22.05 kHz, as the music made).
        """
        import_model_libraries()
        from pipelines.systems import playlist_to_music

        settings = (settings or playlist_to_music.PlaylistToMusicSettings()).validate()
        tracks = playlist_to_music.load_tracks(tracks)  # all checked before any model loads
        result = self.manager.run(
            "amuse",
            lambda m: playlist_to_music.playlist_to_music(m.unet, m.vae, m.scheduler, tracks, settings,
                                                          should_stop=should_stop, on_progress=on_progress),
        )
        self._clap_metrics(result, clap, playlist=tracks)
        return _made_by(result, "amuse_unet+amuse_vae")

    def text_to_music(
        self,
        settings=None,
        model: str = "riffusion",
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Prompt -> music of any length up to 60 s: Riffusion windows continuing each other.

        ``settings``: ``settings.TextToMusicSettings`` (None: its defaults); ``model``: one of
        TEXT_TO_MUSIC_MODELS. Settings are checked before any model loads.
        """
        import_model_libraries()
        from pipelines.systems import text_to_music

        if model not in TEXT_TO_MUSIC_MODELS:
            raise InputError(f"Unknown model {model!r}: use one of {', '.join(TEXT_TO_MUSIC_MODELS)}.")
        settings = (settings or text_to_music.TextToMusicSettings()).validate()
        result = self.manager.run(
            model,
            lambda pipe: text_to_music.text_to_music(pipe, settings, device=self.device, on_progress=on_progress,
                                                     should_stop=should_stop),
        )
        return _made_by(result, model)

    def interpolate_prompts(
        self,
        settings=None,
        *,
        on_progress: Callable[[float, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ):
        """Riffusion's interpolation from (prompt A, seed A) to (prompt B, seed B) over N windows.

        ``settings``: ``settings.PromptInterpolationSettings`` (None: its defaults), checked before
        any model loads. Runs on the shared ``riffusion`` model.
        """
        import_model_libraries()
        from pipelines.systems import prompt_interpolation

        settings = (settings or prompt_interpolation.PromptInterpolationSettings()).validate()
        result = self.manager.run(
            "riffusion",
            lambda pipe: prompt_interpolation.interpolate_prompts(pipe, settings, device=self.device,
                                                                  on_progress=on_progress, should_stop=should_stop),
        )
        return _made_by(result, "riffusion")

    def extend_music(self, audio_source: Any, settings=None, **callbacks: Any):
        """A track continued after its end or before its start: ``extend.extend_music`` (on_progress, should_stop)."""
        from pipelines.systems import extend

        return extend.extend_music(self, audio_source, settings, **callbacks)

    def variations(self, engine: str, settings, count: int, **options: Any):
        """One request with ``count`` seeds: ``variations.variations`` (prompt, on_progress, should_stop)."""
        from pipelines.systems import variations

        return variations.variations(self, engine, settings, count, **options)

    def train_style(self, clips: Any, settings, session: str | None = None):
        """Queue a training (a MusicTI style or a genre LoRA) for ``session`` in its own process:
        ``train_style.submit``; returns the job."""
        from pipelines.systems import train_style

        return train_style.submit(self, clips, settings, session=session)

    # -- what the About panel shows ------------------------------------------------------------------
