"""Command line: ``python -m evaluation {pair,ablation,musicti,fad} ...`` (see ``evaluation/__init__.py``).

Errors in the input (a missing file, an empty folder, corrupt audio, a value out of range) print one
line ``error: ...`` on stderr and exit with status 2; results go to stdout as JSON.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=os.environ.get("STUDIO_PROFILE", "hub"),
                        choices=("hub", "tiny", "fullsize"), help="models: real (hub), tiny or fullsize random ones")
    parser.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"),
                        help="auto, cpu, cuda, cuda:N or mps (under accelerate launch: auto = cuda:<local rank>)")


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def build_parser() -> argparse.ArgumentParser:
    from pipelines.signal.metrics import PAIR_MODES

    parser = argparse.ArgumentParser(prog="python -m evaluation", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    pair = commands.add_parser("pair", help="SSIM / CENS (and CLAP) of one input/output pair, one JSON line")
    pair.add_argument("input", help="the input sound (any format the app reads)")
    pair.add_argument("output", help="the generated sound")
    pair.add_argument("--mode", choices=PAIR_MODES, default="paper",
                      help="paper: the mask paper's notebook; studio: the app's own way (docs/EVALUATION.md)")
    pair.add_argument("--clap", action="store_true", help="add CLAP content preservation (and the CLAP score with --prompt)")
    pair.add_argument("--prompt", default=None, help="the prompt of the output, for the CLAP score")
    pair.add_argument("--styles", type=_names, default=None,
                      help="comma-separated style names, for MusicTI's style fit (mean, max)")
    _common(pair)

    ablation = commands.add_parser("ablation", help="the mask paper's ablation over a folder of sounds")
    ablation.add_argument("sounds", help="folder of input sounds")
    ablation.add_argument("--out", required=True, help="output folder (rerun to resume)")
    ablation.add_argument("--downshift", type=float, nargs="+", default=None,
                          help="downshift values (default 0 40 80 150 200 unless another sweep is given)")
    ablation.add_argument("--brightness", type=float, nargs="+", default=None, help="brightness values to sweep")
    ablation.add_argument("--contrast", type=float, nargs="+", default=None, help="contrast values to sweep")
    for name in ("downshift", "brightness", "contrast"):
        ablation.add_argument(f"--base-{name}", type=float, default=None,
                              help=f"{name} while another setting is swept (default: the tab's)")
    ablation.add_argument("--mode", choices=PAIR_MODES, default="paper")
    ablation.add_argument("--model", default="mask_model", choices=("mask_model", "riffusion"))
    ablation.add_argument("--prompt", default=None, help="style prompt (default: the tab's)")
    ablation.add_argument("--steps", type=int, default=None, help="denoising steps (default 50)")
    ablation.add_argument("--seed", type=int, default=None, help="seed (default 1040, the paper's)")
    ablation.add_argument("--clap", action="store_true", help="also CLAP content preservation and CLAP score")
    _common(ablation)

    musicti = commands.add_parser("musicti", help="MusicTI's protocol: content preservation and style fit")
    musicti.add_argument("contents", help="folder of content clips")
    musicti.add_argument("--out", required=True, help="output folder (rerun to resume)")
    musicti.add_argument("--styles", type=_names, default=None, help="comma-separated style names (default: all)")
    musicti.add_argument("--pairs", type=int, default=20, help="random style pairs per clip at 0.5/0.5 (MusicTI: 20)")
    musicti.add_argument("--seed", type=int, default=0, help="seed of the pair draw")
    musicti.add_argument("--steps", type=int, default=None, help="DDIM steps (default 50)")
    musicti.add_argument("--strength", type=float, default=None, help="strength (default 0.7)")
    _common(musicti)

    fad = commands.add_parser("fad", help="FAD (CLAP embeddings, fadtk's formula) of outputs vs a reference folder")
    fad.add_argument("outputs", help="folder of generated sounds")
    fad.add_argument("reference", help="folder of reference sounds (its statistics are cached)")
    fad.add_argument("--cache", default=None, help="statistics cache folder (default ~/.cache/music-studio/fad-stats)")
    fad.add_argument("--allow-few", action="store_true",
                     help="give a value even when a set has fewer embeddings than CLAP's dimensions + 1 (refused "
                          "otherwise: its covariance is singular), with a warning")
    _common(fad)
    return parser


def _clean(value: Any) -> Any:
    """NaN and infinities as null: the line stays valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def run(args: argparse.Namespace) -> dict[str, Any] | None:
    from dataclasses import replace

    device = None if args.device == "auto" else args.device
    if args.command == "pair":
        from .pair import evaluate_pair
        from .runner import make_studio

        studio = make_studio(args.profile, device) if (args.clap or args.prompt or args.styles) else None
        return evaluate_pair(args.input, args.output, args.mode, studio=studio, prompt=args.prompt, styles=args.styles)
    if args.command == "ablation":
        from pipelines.schema.settings import SoundToMusicSettings

        from .ablation import DEFAULT_DOWNSHIFTS, run_ablation

        sweeps = {name: getattr(args, name) for name in ("downshift", "brightness", "contrast") if getattr(args, name)}
        if not sweeps:
            sweeps = {"downshift": list(DEFAULT_DOWNSHIFTS)}
        base = SoundToMusicSettings()
        mask = {k: getattr(args, f"base_{k}") for k in ("downshift", "brightness", "contrast")
                if getattr(args, f"base_{k}") is not None}
        changes = {k: v for k, v in {"prompt": args.prompt, "steps": args.steps, "seed": args.seed}.items() if v is not None}
        base = replace(base, mask=replace(base.mask, **mask), **changes)
        return run_ablation(args.sounds, args.out, sweeps, base=base, model=args.model,
                            mode=args.mode, with_clap=args.clap, profile=args.profile, device=device)
    if args.command == "musicti":
        from pipelines.systems.style_interpolation import StyleInterpolationSettings

        from .musicti import run_musicti

        changes = {k: v for k, v in {"steps": args.steps, "strength": args.strength}.items() if v is not None}
        return run_musicti(args.contents, args.out, styles=args.styles, pairs=args.pairs, seed=args.seed,
                           settings=replace(StyleInterpolationSettings(), **changes), profile=args.profile,
                           device=device)
    from .fad import DEFAULT_CACHE, evaluate_fad
    from .runner import make_studio

    return evaluate_fad(make_studio(args.profile, device), args.outputs, args.reference, args.cache or DEFAULT_CACHE,
                        allow_few=args.allow_few)


def main(argv: list[str] | None = None) -> int:
    from core.errors import StudioError, command_line

    args = build_parser().parse_args(argv)
    try:
        with command_line():  # file errors name the path given, not an upload
            result = run(args)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if result is not None:  # None: a non-first process of a sharded run
        if result.get("warning"):  # in the JSON too; here where a person reading the run sees it
            print(f"warning: {result['warning']}", file=sys.stderr)
        print(json.dumps(_clean(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
