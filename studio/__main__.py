"""Command line: ``python -m studio batch <pipeline> IN_DIR OUT_DIR [key=value ...]``.

Errors in the input (a missing folder, an unknown setting, a value out of range) print one line
``error: ...`` on stderr and exit with status 2; the summary goes to stdout as JSON (first process only).
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from .batch import PIPELINES

    parser = argparse.ArgumentParser(prog="python -m studio", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    batch = commands.add_parser(
        "batch", help="run a sound-making pipeline over a folder (resumable; shards under accelerate launch)",
        description="Runs PIPELINE on every file of IN_DIR with the app's settings and writes what the app "
                    "saves into OUT_DIR/<file name>/. Rerun to resume; under `accelerate launch` each process "
                    "takes its share. Settings are key=value pairs of the pipeline's settings (mask.downshift=100 "
                    "for nested ones) and its options; `--list` shows them.")
    batch.add_argument("pipeline", choices=sorted(PIPELINES))
    batch.add_argument("in_dir", nargs="?", help="folder of inputs (sounds; pictures for image_to_music)")
    batch.add_argument("out_dir", nargs="?", help="output folder (rerun to resume)")
    batch.add_argument("settings", nargs="*", help="key=value, e.g. steps=25 seed=3 prompt='jazz, piano'")
    batch.add_argument("--list", action="store_true", help="print the pipeline's settings with their defaults")
    batch.add_argument("--profile", default=os.environ.get("STUDIO_PROFILE", "hub"), choices=("hub", "tiny", "fullsize"),
                       help="models: real (hub), tiny or fullsize random ones")
    batch.add_argument("--device", default=os.environ.get("STUDIO_DEVICE", "auto"),
                       help="auto, cpu, cuda, cuda:N or mps (under accelerate launch: auto = cuda:<local rank>)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from core.errors import StudioError, command_line

    from .batch import describe_settings, run_batch

    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print(describe_settings(args.pipeline))
        return 0
    if not args.in_dir or not args.out_dir:
        parser.error("IN_DIR and OUT_DIR are required")
    try:
        with command_line():  # file errors name the path given, not an upload
            summary = run_batch(args.pipeline, args.in_dir, args.out_dir, args.settings, profile=args.profile,
                                device=None if args.device == "auto" else args.device)
    except StudioError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if summary is not None:  # None: a non-first process of a sharded run
        print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
