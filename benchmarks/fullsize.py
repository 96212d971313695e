"""Full-size benchmark: what every model weighs, what each tab costs, and what swaps on which GPU.

    python benchmarks/fullsize.py                          # everything, on the CPU (tabs take minutes)
    python benchmarks/fullsize.py --only roles,manager     # the cheap parts: no model is built or loaded
    python benchmarks/fullsize.py --only tabs --tabs sound_to_music
    python benchmarks/fullsize.py --device cuda            # the same on a GPU (builds the cache there)

Three tables:
1. roles: parameters of every role's full-size model (counted on the meta device from the real
   configs, ``pipelines/fullsize.py``), bytes in fp32 and fp16, and the real repository's weight
   files (``fullsize_specs.REAL_SIZES``, from ``../shared/reference/hub``'s manifests).
2. manager: the DeviceManager fed fake models of the real fp16 (GPU) or fp32 (CPU/MPS) sizes, with
   the Studio's budget of 75% of the card, through the tab sequence sound-to-music, music-to-image,
   style, image-to-music, playlist, sound-to-music, music-to-image: offloads and reloads per card.
3. tabs: one call per tab at full size (``--profile fullsize``: random weights, real shapes) with 2
   denoising steps at strength 1.0 (UNet calls are CFG batches of 2; the SD repos' PNDM scheduler
   makes 3 calls for 2 steps), time per stage (text
   encoder, VAE encode, UNet per step, VAE decode, spectrogram codec, classifiers, caption, MusicGen
   per generated second), peak memory, and the stock diffusers pipeline on the same components,
   steps and size timed in the same run (img2img for the spectrogram tabs, text-to-image for
   music-to-image), so our overhead is a ratio. On a GPU each call (ours and stock) runs once
   untimed first. The first run builds the fullsize cache (~16 GB; only the tabs' families).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("KERAS_BACKEND", "torch")

from fullsize_tabs import GB, TAB_ENTRIES, run_tab, stage_text, table, tabs_table  # noqa: E402

TAB_SEQUENCE = ("sound_to_music", "music_to_image", "style", "image_to_music", "playlist",
                "sound_to_music", "music_to_image")
# fullsize families each tab needs built
TAB_FAMILIES = {"sound_to_music": ("riffusion",), "music_to_image": ("sd15", "lora", "keras_genre", "keras_emotion"),
                "style": ("riffusion", "music_styles"), "image_to_music": ("blip", "musicgen"),
                "playlist": ("amuse_unet", "amuse_vae")}
CARDS_GB = (16, 24, 40, 80)  # T4 / A10G, L4-class 24 GB, A100 40 GB, A100/H100 80 GB


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)




# -- 1. roles ------------------------------------------------------------------------------------------
def keras_parameters(module_name: str) -> int:
    import importlib

    return importlib.import_module(f"classifiers.{module_name}").build_model().count_params()


def lora_parameters() -> int:
    """128 rank-4 pairs over SD 1.5's attention projections, counted from the UNet on the meta device."""
    import torch
    from diffusers.models.attention_processor import Attention

    from pipelines import fullsize_specs

    with torch.device("meta"):
        unet = fullsize_specs.sd_unet()
    total = 0
    for module in unet.modules():
        if isinstance(module, Attention):
            for linear in (module.to_q, module.to_k, module.to_v, module.to_out[0]):
                total += 4 * (linear.in_features + linear.out_features)
    return total


def role_parameters() -> dict[str, int]:
    """Parameters (and buffers) of each role's model, as the loaders hold them."""
    from pipelines import fullsize_specs

    counts = {}
    for role, family in (("riffusion", "riffusion"), ("mask_model", "riffusion"), ("sd15", "sd15"),
                         ("blip", "blip"), ("musicgen", "musicgen"), ("clap", "clap"),
                         ("sentence_embedder", "sentence"), ("amuse_unet", "amuse_unet"),
                         ("amuse_vae", "amuse_vae"), ("music_styles", "music_styles")):
        counts[role] = sum(fullsize_specs.parameter_counts(family).values())
    counts["music_styles"] *= 3  # the fullsize library holds three styles
    counts["m2i_lora"] = lora_parameters()
    counts["genre_classifier"] = keras_parameters("genre")
    counts["emotion_classifier"] = keras_parameters("emotion")
    return counts


def roles_table(counts: dict[str, int]) -> str:
    from pipelines import fullsize_specs

    rows = []
    for role, params in counts.items():
        real = sum(fullsize_specs.REAL_SIZES.get(role, {}).values())
        ours = 4 * params * (3 if role.endswith("_classifier") else 1)  # .h5 files hold Adam's 2 slots too
        if role == "mask_model":
            real_text, ratio = f"{real / GB:.3f} (unet only)", "-"
        elif real:
            real_text, ratio = f"{real / GB:.3f}", f"{ours / real:.3f}"
        else:
            real_text, ratio = "not published", "-"
        rows.append([role, f"{params / 1e6:.1f}", f"{4 * params / GB:.3f}", f"{2 * params / GB:.3f}", real_text, ratio])
    return table(["role", "params (M)", "fp32 GB", "fp16 GB", "real files GB", "ours/real"], rows)


# -- 2. the DeviceManager with the real sizes ------------------------------------------------------------
class SizedModel:
    """A stand-in the manager can load, move and measure: only its byte size is real."""

    def __init__(self, nbytes: int):
        self.nbytes = nbytes

    def to(self, *args, **kwargs):
        return self


def entry_bytes(counts: dict[str, int], bytes_per_param: int) -> dict[str, int]:
    sizes = {entry: counts[entry] for entry in ("mask_model", "sd15", "riffusion", "blip", "musicgen")}
    sizes["amuse"] = counts["amuse_unet"] + counts["amuse_vae"]
    return {entry: n * bytes_per_param for entry, n in sizes.items()}


def replay_tabs(sizes: dict[str, int], budget: int) -> dict[str, object]:
    from pipelines.device import DeviceManager

    manager = DeviceManager(device="accelerator", budget_bytes=budget, eviction="offload")
    for entry, nbytes in sizes.items():
        manager.register(entry, lambda nbytes=nbytes: SizedModel(nbytes))
    peak = 0
    for tab in TAB_SEQUENCE:
        for entry in TAB_ENTRIES[tab]:
            manager.run(entry, lambda model: None)
            peak = max(peak, manager.resident_bytes())
    events = Counter(kind for kind, _ in manager.events)
    first_placements = len({name for kind, name in manager.events if kind == "to_device"})
    return {"offloads": events["offload"], "reloads": events["to_device"] - first_placements, "peak": peak,
            "evicted": sorted({name for kind, name in manager.events if kind == "offload"})}


def manager_table(counts: dict[str, int]) -> str:
    rows = []
    for dtype, per_param in (("fp16", 2), ("fp32", 4)):
        sizes = entry_bytes(counts, per_param)
        for card in CARDS_GB:
            budget = int(0.75 * card * 2**30)
            result = replay_tabs(sizes, budget)
            rows.append([f"{card} GB", dtype, f"{budget / 2**30:.1f}", f"{sum(sizes.values()) / GB:.2f}",
                         f"{result['peak'] / GB:.2f}", result["offloads"], result["reloads"],
                         ", ".join(result["evicted"]) or "-"])
    return table(["card", "weights", "budget GiB", "all tabs GB", "peak resident GB", "offloads", "reloads",
                  "models swapped out"], rows)


def build_cache(tabs: list[str], device: str) -> float:
    """Build the fullsize families the tabs need (on the GPU's RNG when benchmarking there)."""
    from pipelines import fullsize

    if device.startswith("cuda"):
        os.environ.setdefault("STUDIO_FULLSIZE_DEVICE", device)  # random init on the GPU: seconds, not minutes
    families = sorted({f for tab in tabs for f in TAB_FAMILIES[tab]})
    start = time.perf_counter()
    built = fullsize.build_all(families, log=log)
    seconds = time.perf_counter() - start
    if built:
        log(f"fullsize cache: built {', '.join(built)} in {seconds:.0f} s")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (tabs run there; the tables are the same)")
    parser.add_argument("--only", default="roles,manager,tabs", help="comma-separated parts: roles, manager, tabs")
    parser.add_argument("--tabs", default=",".join(TAB_ENTRIES), help="comma-separated tabs to run")
    parser.add_argument("--steps", type=int, default=2)
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    if unknown := (parts - {"roles", "manager", "tabs"}) | (set(tabs) - set(TAB_ENTRIES)):
        parser.error(f"unknown part or tab: {', '.join(sorted(unknown))}")

    if parts & {"roles", "manager"}:
        log("counting parameters from the real configs (meta device) ...")
        counts = role_parameters()
        if "roles" in parts:
            print("\n## Roles: parameters, bytes, and the real repositories' weight files\n")
            print(roles_table(counts))
        if "manager" in parts:
            print("\n## DeviceManager with the real sizes (budget = 75% of the card), tab sequence:")
            print("   " + " -> ".join(TAB_SEQUENCE) + "\n")
            print(manager_table(counts))

    if "tabs" in parts:
        os.environ.setdefault("STUDIO_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "studio"))
        build_cache(tabs, args.device)
        from pipelines.studio import Studio

        studio = Studio(profile="fullsize", device=args.device)
        results = []
        with tempfile.TemporaryDirectory() as folder:
            for tab in tabs:
                log(f"tab {tab}: loading and one call with {args.steps} steps on {studio.device} ({studio.info.dtype}) ...")
                result = run_tab(studio, tab, args.steps, Path(folder))
                log(f"tab {tab}: {result['total_s']:.1f} s ({stage_text(result)})")
                results.append(result)
                studio.manager.evict_all()  # one tab's models at a time: the peaks are per tab
        print(f"\n## Tabs at full size, {args.steps} steps, device {studio.device} ({studio.info.dtype})\n")
        print(tabs_table(results))


if __name__ == "__main__":
    main()
