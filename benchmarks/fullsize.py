"""Full-size benchmark: what every model weighs, what each tab costs, and what swaps on which GPU.

    python benchmarks/fullsize.py                          # everything, on the CPU (tabs take minutes)
    python benchmarks/fullsize.py --only roles,manager     # the cheap parts: no model is built or loaded
    python benchmarks/fullsize.py --only tabs --tabs sound_to_music
    python benchmarks/fullsize.py --only manager,window --json   # the figures of issue 15, last line JSON
    python benchmarks/fullsize.py --device cuda            # the same on a GPU (builds the cache there)

Four parts:
1. roles: parameters of every role's full-size model (counted on the meta device from the real
   configs, ``pipelines/models/building/fullsize.py``), bytes in fp32 and fp16, and the real repository's weight
   files (``fullsize_specs.REAL_SIZES``, from ``../shared/reference/hub``'s manifests).
2. manager: the real DeviceManager, on the real-size modules of every entry built from the real
   configs on the meta device (fp32 as loaded, cast by the manager: no memory), through the tab
   sequence sound-to-music, music-to-image, sound-to-music, style, image-to-music, playlist,
   sound-to-music: evictions and reloads for GPU cards (fp16, budget 75% of the card, offload) and
   CPU machines (fp32, budget 75% of their memory, drop). JSON key ``lru``.
3. tabs: one call per tab at full size (``--profile fullsize``: random weights, real shapes) with 2
   denoising steps at strength 1.0 (UNet calls are CFG batches of 2; the SD repos' PNDM scheduler
   makes 3 calls for 2 steps), time per stage (text
   encoder, VAE encode, UNet per step, VAE decode, spectrogram codec, classifiers, caption, MusicGen
   per generated second), peak memory, and the stock diffusers pipeline on the same components,
   steps and size timed in the same run (img2img for the spectrogram tabs, text-to-image for
   music-to-image), so our overhead is a ratio. On a GPU each call (ours and stock) runs once
   untimed first. The first run builds the fullsize cache (~16 GB; only the tabs' families).
4. window (``fullsize_window.py``): one sound-to-music window against stock img2img
   (``overhead_vs_stock_img2img``) and two windows batched against one at a time
   (``batched_windows_speedup``), on the mask model's full-size components (builds only riffusion).

``--json`` ends the output with one JSON line of these figures.
"""

from __future__ import annotations

import argparse
import json
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

TAB_SEQUENCE = ("sound_to_music", "music_to_image", "sound_to_music", "style", "image_to_music", "playlist",
                "sound_to_music")
# fullsize families each tab needs built
TAB_FAMILIES = {"sound_to_music": ("riffusion",), "music_to_image": ("sd15", "lora", "keras_genre", "keras_emotion"),
                "style": ("riffusion", "music_styles"), "image_to_music": ("blip", "musicgen"),
                "playlist": ("amuse_unet", "amuse_vae")}
CARDS_GB = (8, 10, 16, 24, 40, 80)  # small cards, T4 16 GB, A10G/L4 24 GB, A100 40 GB, A100/H100 80 GB
CPU_RAM_GB = (16, 32)  # CPU Spaces: the free tier has 16 GB


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

    from pipelines.models.building import fullsize_specs

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
    from pipelines.models.building import fullsize_specs

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
    from pipelines.models.building import fullsize_specs

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
# manager entry -> the fullsize families (real configurations) whose torch parts it holds
ENTRY_FAMILIES = {"mask_model": ("riffusion",), "sd15": ("sd15",), "riffusion": ("riffusion",), "blip": ("blip",),
                  "musicgen": ("musicgen",), "amuse": ("amuse_unet", "amuse_vae")}


def meta_entry(entry: str):
    """The entry's real torch modules (real configurations), on the meta device in fp32, as a
    ModelBundle: the manager measures, casts and moves them for real, without a byte allocated."""
    import torch

    from pipelines.models.building import fullsize_specs
    from pipelines.models.loaders import ModelBundle

    class MetaBundle(ModelBundle):
        def to(self, *args, **kwargs):
            if args and args[0] == "cpu":  # an offload: meta tensors cannot be copied to the CPU; the
                return self  # accounting (what leaves the device) is the manager's and stays real
            return super().to(*args, **kwargs)

    parts = {}
    with torch.device("meta"):
        for family in ENTRY_FAMILIES[entry]:
            for part, factory in fullsize_specs.TORCH_PARTS[family].items():
                parts[f"{family}_{part}"] = factory()
    return MetaBundle(**parts)


def replay_tabs(budget: int, dtype, eviction: str = "offload", sequence=TAB_SEQUENCE) -> dict[str, object]:
    """The tab sequence through a real DeviceManager (device "meta", the given dtype and budget) on the
    real-size modules of ``meta_entry``; counts evictions (offloads or drops) and reloads."""
    from diffusers.utils import logging as diffusers_logging

    from pipelines.models.device import DeviceManager

    diffusers_logging.set_verbosity_error()  # "modules to keep in float32: []" on every cast of a meta model
    manager = DeviceManager(device="meta", dtype=dtype, budget_bytes=budget, eviction=eviction)
    for entry in ENTRY_FAMILIES:
        manager.register(entry, lambda entry=entry: meta_entry(entry))
    peak = 0
    for tab in sequence:
        for entry in TAB_ENTRIES[tab]:
            manager.run(entry, lambda model: None)
            peak = max(peak, manager.resident_bytes())
    events = Counter(kind for kind, _ in manager.events)
    first_placements = len({name for kind, name in manager.events if kind == "to_device"})
    sizes = {row["name"]: row["mb"] * 2**20 for row in manager.status()}
    return {"evictions": events["offload"] + events["drop"], "reloads": events["to_device"] - first_placements,
            "peak": peak, "all_entries": sum(sizes.values()),
            "evicted": sorted({name for kind, name in manager.events if kind in ("offload", "drop")})}


def lru_results() -> dict[str, dict]:
    """Per budget: fp16 GPU cards (budget 75% of the card, models offloaded to the CPU) and fp32 CPU
    machines (budget 75% of their memory, taken as all available at start; models dropped)."""
    import torch

    results = {}
    for card in CARDS_GB:
        result = replay_tabs(int(0.75 * card * 2**30), torch.float16)
        results[f"{card}GB"] = {"evictions": result["evictions"], "reloads": result["reloads"],
                                "budget_gib": round(0.75 * card, 2), "peak_resident_gb": round(result["peak"] / GB, 2),
                                "all_entries_gb": round(result["all_entries"] / GB, 2), "evicted": result["evicted"]}
    for ram in CPU_RAM_GB:
        result = replay_tabs(int(0.75 * ram * 2**30), None, eviction="drop")
        results[f"cpu_{ram}GB"] = {"evictions": result["evictions"], "reloads": result["reloads"],
                                   "budget_gib": round(0.75 * ram, 2),
                                   "peak_resident_gb": round(result["peak"] / GB, 2),
                                   "all_entries_gb": round(result["all_entries"] / GB, 2),
                                   "evicted": result["evicted"]}
    return results


def manager_table(lru: dict[str, dict]) -> str:
    rows = [[name, "fp32" if name.startswith("cpu") else "fp16", r["budget_gib"], r["all_entries_gb"],
             r["peak_resident_gb"], r["evictions"], r["reloads"], ", ".join(r["evicted"]) or "-"]
            for name, r in lru.items()]
    return table(["budget of", "weights", "budget GiB", "all tabs GB", "peak resident GB", "evictions", "reloads",
                  "models evicted"], rows)


def build_cache(tabs: list[str], device: str) -> float:
    """Build the fullsize families the tabs need (on the GPU's RNG when benchmarking there)."""
    from pipelines.models.building import fullsize

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
    parser.add_argument("--only", default="roles,manager,tabs,window",
                        help="comma-separated parts: roles, manager, tabs, window")
    parser.add_argument("--tabs", default=",".join(TAB_ENTRIES), help="comma-separated tabs to run")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--json", action="store_true",
                        help="end with one JSON line: lru, overhead_vs_stock_img2img, batched_windows_speedup")
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    tabs = [t.strip() for t in args.tabs.split(",") if t.strip()]
    if unknown := (parts - {"roles", "manager", "tabs", "window"}) | (set(tabs) - set(TAB_ENTRIES)):
        parser.error(f"unknown part or tab: {', '.join(sorted(unknown))}")
    summary: dict = {"device": args.device}

    if "roles" in parts:
        log("counting parameters from the real configs (meta device) ...")
        print("\n## Roles: parameters, bytes, and the real repositories' weight files\n")
        print(roles_table(role_parameters()))
    if "manager" in parts:
        log("replaying the tab sequence through the DeviceManager on real-size meta modules ...")
        summary["lru"] = lru_results()
        summary["lru_sequence"] = list(TAB_SEQUENCE)
        print("\n## DeviceManager with the real sizes (GPU: 75% of the card, fp16; CPU: 75% of its memory, fp32),")
        print("   tab sequence " + " -> ".join(TAB_SEQUENCE) + "\n")
        print(manager_table(summary["lru"]))

    if parts & {"tabs", "window"}:
        os.environ.setdefault("STUDIO_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "studio"))
        build_cache(tabs if "tabs" in parts else ["sound_to_music"], args.device)
        from pipelines.studio import Studio

        studio = Studio(profile="fullsize", device=args.device)
        summary["dtype"] = studio.info.dtype
    if "tabs" in parts:
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
    if "window" in parts:
        from fullsize_window import run_window

        window = run_window(studio, args.steps, 1.0, log)
        summary["window"] = window
        summary["overhead_vs_stock_img2img"] = window["overhead_vs_stock_img2img"]
        summary["batched_windows_speedup"] = window["batched_windows_speedup"]
        print(f"\n## One window on {studio.device} ({studio.info.dtype}), {window['steps']} steps at strength 1.0 "
              f"({window['unet_calls']} UNet calls)\n")
        print(table(["measure", "seconds"], [["stock img2img", f"{window['stock_s']:.2f}"],
                                             ["our window (codec, mask, diffusion, inversion, metrics)",
                                              f"{window['ours_s']:.2f}"],
                                             ["two windows one at a time", f"{window['two_windows_one_at_a_time_s']:.2f}"],
                                             ["two windows in one UNet batch", f"{window['two_windows_batched_s']:.2f}"]]))
        print(f"\nours / stock: {window['overhead_vs_stock_img2img']:.3f}; "
              f"batched speedup: {window['batched_windows_speedup']:.3f}")
    if args.json:
        print(json.dumps(summary))


if __name__ == "__main__":
    main()
