"""Every model role the app uses, declared once: adding a model is one ``Role`` entry in ``ROLES``.

A *role* is what a model is for ("riffusion", "mask_model", "sd15", ...). Its entry says where the
weights live on the Hub (repo and pinned revision), which loader of ``loaders.py`` opens them, which
device-manager entry holds them, which tabs stop without them, and which tiny and full-size
*families* stand in for it (``tiny.py`` and ``fullsize.py`` register one builder per family with
``@builder(family)``; several roles may share a family). The readers:

* ``models.ModelRegistry`` resolves a role to a Hub repo, a local override or a built folder;
* ``loaders.entry_loaders`` registers one loader per device-manager entry (``Role.loader``);
* ``studio`` and the About tab name the tabs a missing model stops (``tab_entries``);
* ``fullsize_specs.REAL_SIZES`` and the builders' tests read ``real_sizes`` and the families.

This module imports nothing but the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Tab names, as the UI shows them (the About tab lists the tabs a missing model stops).
SOUND_TO_MUSIC = "Sound to music"
MUSIC_TO_IMAGE = "Music to image"
STYLE_INTERPOLATION = "Style interpolation"
TEXT_TO_MUSIC = "Text to music"
IMAGE_TO_MUSIC = "Image to music"
PLAYLIST_TO_MUSIC = "Playlist to music"
METRICS = "CLAP metrics (every tab that makes sound; the tabs work without them)"


@dataclass(frozen=True)
class Role:
    name: str
    repo_id: str | None  # None: not published on the Hub; an override is needed
    revision: str  # the full commit sha recorded in ../shared/reference/hub, else "main" (see UNPINNED_ROLES)
    family: str  # the tiny builder's family that stands in for it (tiny.py)
    purpose: str
    files: tuple[str, ...] = ()  # for single-file roles (LoRA, Keras .h5)
    variants: tuple[str, ...] = ()  # weight variants the repo publishes (SD 1.5: "fp16" files beside fp32)
    # the ``loaders.LOADERS`` key that opens it; None: a file or folder a pipeline opens itself (LoRA,
    # styles) or a part another role's loader opens (the AMUSE VAE, opened with the AMUSE UNet)
    loader: str | None = None
    entry: str | None = None  # the device-manager entry holding it; None: the role's own name
    tabs: tuple[str, ...] = ()  # the tabs that need it
    fullsize_family: str | None = None  # the full-size builder's family; None: the tiny family's name
    real_sizes: dict[str, int] = field(default_factory=dict, hash=False)  # the Hub files' bytes per part

    @property
    def manager_entry(self) -> str:
        return self.entry or self.name

    def family_for(self, profile: str) -> str:
        """The built profile's family for this role ("tiny" or "fullsize")."""
        return (self.fullsize_family or self.family) if profile == "fullsize" else self.family


# Revisions: the full commit sha each repo's manifest in ../shared/reference/hub records (the newest
# commit seen with its full sha; later commits seen there only change READMEs). A repo with no full
# sha known stays on "main" and is listed in UNPINNED_ROLES (and the README's fullsize section).
RIFFUSION_SHA = "4a629d28923f3618cb773f4b6ab8a205a8a6b406"  # #27, 2023-05-16; a README-only commit may follow
SD15_SHA = "451f4fe16113bff5a5d2269ed5ad43b0592e9a14"  # same snapshot under the old runwayml name
BLIP_SHA = "353689b859fcf0523410b1806dace5fb46ecdf41"  # README-only change over 2227ac38 (#18 safetensors)
MUSICGEN_SHA = "3e02990f9775c87efd8f8af10faa8bf78294b338"  # newest tree seen (28 commits)
# not in ../shared/reference/hub: the newest tree of the Hub page (18 commits, "Upload MusicgenMelodyForConditionalGeneration")
MUSICGEN_MELODY_SHA = "6eb8539b8f58210b68673406f403bb0e63ba730e"
CLAP_SHA = "8fa0f1c6d0433df6e97c127f64b2a1d6c0dcda8a"  # main head, 2023-04-24
SENTENCE_SHA = "842eaed40bee4d61673a81c92d5689a8fed7a09f"  # the Hub cache snapshot public code downloads
AMUSE_UNET_SHA = "2745e7eb509b4c4055a8fbcd556577aac7bf51d1"  # 2024-05-27 (README) over the Epoch 89/99 weights
UNPINNED_ROLES = frozenset({"mask_model"})  # cappiepappie: only the short sha 4f3317c is known

# Real sizes are the repositories' weight files in bytes, from the manifests (decimal GB/MB as the Hub
# lists them); only sizes a manifest gives, a part missing is unknown. Keras .h5 files saved after fit
# hold the weights plus Adam's two slots per weight, so 3x the weights.
ROLES: dict[str, Role] = {
    r.name: r
    for r in [
        Role("riffusion", "riffusion/riffusion-model-v1", RIFFUSION_SHA, "sd",
             "Riffusion base (spectrogram Stable Diffusion), shared by sound-to-music and style interpolation",
             loader="sd_img2img", tabs=(SOUND_TO_MUSIC, STYLE_INTERPOLATION, TEXT_TO_MUSIC),
             fullsize_family="riffusion",
             # the unmerged safetensors PR's per-component files (main's .bin are the same tensors)
             real_sizes={"unet": 3_438_167_534, "text_encoder": 492_265_879, "vae": 334_643_276}),
        Role("mask_model", "cappiepappie/stable-diffusion-music-25", "main", "sd",
             "Riffusion fine-tune used by the mask-based img2img paper's notebooks",
             loader="sd_img2img", tabs=(SOUND_TO_MUSIC, TEXT_TO_MUSIC), fullsize_family="riffusion",
             real_sizes={"unet": 3_440_000_000}),  # unet/diffusion_pytorch_model.bin; other parts not listed
        Role("sd15", "stable-diffusion-v1-5/stable-diffusion-v1-5", SD15_SHA, "sd",
             "Stable Diffusion 1.5 for music-to-image", variants=("fp16",),
             loader="sd_img2img", tabs=(MUSIC_TO_IMAGE,), fullsize_family="sd15",
             # v1-5-pruned-emaonly.safetensors holds exactly the unet, vae and text encoder the pipeline loads
             real_sizes={"pipeline": 4_270_000_000}),
        Role("m2i_lora", None, "main", "lora",
             "Music-to-image LoRA (UNet-only, rank 4; in the TechJam GitHub repo, not on the Hub)",
             ("pytorch_lora_weights.safetensors",), tabs=(MUSIC_TO_IMAGE,), real_sizes={"lora": 3_226_184}),
        Role("s2m_lora", None, "main", "lora",
             "Genre LoRA for sound-to-music (DreamBooth-LoRA on Riffusion; train one with "
             "`python -m training.riffusion_lora`)", ("pytorch_lora_weights.safetensors",), tabs=(SOUND_TO_MUSIC,)),
        Role("blip", "Salesforce/blip-image-captioning-large", BLIP_SHA, "blip", "Image captioning",
             loader="blip", tabs=(IMAGE_TO_MUSIC,), real_sizes={"model": 1_880_000_000}),
        Role("musicgen", "facebook/musicgen-small", MUSICGEN_SHA, "musicgen", "Text-to-music",
             loader="musicgen", tabs=(IMAGE_TO_MUSIC,), real_sizes={"model": 2_360_000_000}),
        Role("musicgen_melody", "facebook/musicgen-melody", MUSICGEN_MELODY_SHA, "musicgen_melody",
             "Text-to-music following a tune's melody (its chroma), for image to music",
             loader="musicgen_melody", tabs=(IMAGE_TO_MUSIC,),
             real_sizes={"model": 6_230_000_000}),  # two shards, 4.97 + 1.26 GB (newest tree)
        Role("clap", "laion/clap-htsat-unfused", CLAP_SHA, "clap", "Audio-text similarity for metrics",
             loader="clap", tabs=(METRICS,), real_sizes={"model": 615_000_000}),
        Role("sentence_embedder", "sentence-transformers/all-distilroberta-v1", SENTENCE_SHA, "sentence",
             "Caption-to-lyrics similarity for song recommendation",
             loader="sentence_embedder", tabs=(IMAGE_TO_MUSIC,), real_sizes={"model": 328_000_000}),
        Role("amuse_unet", "alppo/vae-conditioned-diffusion-model_v2", AMUSE_UNET_SHA, "amuse_unet",
             "AMUSE playlist-conditioned spectrogram UNet", loader="amuse", entry="amuse",
             tabs=(PLAYLIST_TO_MUSIC,), real_sizes={"unet": 472_000_000}),
        Role("amuse_vae", None, "main", "amuse_vae", "AMUSE playlist VAE: its weights are published nowhere; train one "
             "with `python -m training.amuse_vae --data music/ --output models/amuse_vae` (docs/MODELS.md)",
             entry="amuse", tabs=(PLAYLIST_TO_MUSIC,)),
        Role("music_styles", None, "main", "music_styles",
             "MusicTI styles: one folder per style (style.json + style.safetensors); convert an embeddings.pt "
             "with `python -m scripts.convert_musicti_checkpoint IN.pt OUT_DIR`", tabs=(STYLE_INTERPOLATION,)),
        Role("genre_classifier", None, "main", "keras_genre",
             "GTZAN genre CNN (TechJam, Keras .h5)", ("Genre_classifier_model.h5",),
             loader="keras_classifier", tabs=(MUSIC_TO_IMAGE,), real_sizes={"h5": 6_874_520}),
        Role("emotion_classifier", None, "main", "keras_emotion",
             "Emotify emotion CNN (TechJam, Keras .h5)", ("emotion_model.h5",),
             loader="keras_classifier", tabs=(MUSIC_TO_IMAGE,), real_sizes={"h5": 246_095_376}),
    ]
}


def tab_roles(tab: str) -> tuple[str, ...]:
    """The roles ``tab`` runs on, in the table's order."""
    return tuple(name for name, role in ROLES.items() if tab in role.tabs)


def tab_entries() -> dict[str, tuple[str, ...]]:
    """Device-manager entries (roles with a loader, by their entry) per tab, tabs in first-mention order."""
    tabs: dict[str, list[str]] = {}
    for role in ROLES.values():
        for tab in role.tabs:
            names = tabs.setdefault(tab, [])
            if role.loader and role.manager_entry not in names:
                names.append(role.manager_entry)
    return {tab: tuple(names) for tab, names in tabs.items() if names}


def loaded_roles() -> list[Role]:
    """The roles a loader opens, one per device-manager entry (the entry's first role)."""
    return [role for role in ROLES.values() if role.loader]
