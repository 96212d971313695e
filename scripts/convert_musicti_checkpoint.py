"""Convert a MusicTI ``embeddings.pt`` into a style folder the studio reads.

    python -m scripts.convert_musicti_checkpoint embeddings.pt styles/accordion [--name accordion]

The reading (a restricted unpickler: only the globals such a file needs) and the conversion live in
``pipelines/models/musicti_checkpoint.py``, where the app also uses them for the two published MusicTI styles
it fetches (``pipelines/models/originals.py``); this is the command line around them.
"""

from __future__ import annotations

from collections.abc import Sequence

from pipelines.models.musicti_checkpoint import (  # noqa: F401  (the names this script has always offered)
    UnsafeCheckpointError,
    convert_musicti_checkpoint,
    musicti_state_dict,
    read_musicti_checkpoint,
)


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: ``checkpoint out_folder [--name NAME]`` (the name defaults to the folder's)."""
    import argparse

    parser = argparse.ArgumentParser(description="Convert a MusicTI embeddings.pt into a style folder.")
    parser.add_argument("checkpoint", help="MusicTI's embeddings.pt")
    parser.add_argument("out_folder", help="the style folder to write (style.json + style.safetensors)")
    parser.add_argument("--name", help="the style's name (default: the folder's name)")
    args = parser.parse_args(argv)
    style = convert_musicti_checkpoint(args.checkpoint, args.out_folder, args.name)
    print(f"Wrote style {style.name!r} ({sum(p.numel() for p in style.module.parameters()):,} parameters) "
          f"to {args.out_folder}")


if __name__ == "__main__":
    main()
