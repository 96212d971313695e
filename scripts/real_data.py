"""The original projects' own files, for tests and benchmarks: where they are, and how to fetch them.

    python -m scripts.real_data fetch     # (or `make real-data`) download them into .cache/real-data
    python -m scripts.real_data where     # print the folder the tests will use, or why there is none

The files belong to the original projects (the mask paper's sounds and outputs, MusicTI's clips and
spectrogram images, the TechJam LoRA); the repository never holds a copy. They are found, in this
order, in:

1. ``$STUDIO_REAL_DATA`` (a folder laid out as ``MANIFEST`` below), then
2. ``data/real`` of the project's shared folder beside the repository (where the team keeps them), then
3. ``.cache/real-data`` in the repository, which ``fetch`` fills from the projects' public GitHub
   repositories at pinned commits, each file checked against its SHA-256.

The model-configuration references (``reference/hub`` of the shared folder, or ``$STUDIO_HUB_REFERENCE``)
are found the same way, without a download: the builders carry their own copy
(``pipelines/models/building/fullsize_configs.json``), so only the test comparing that copy needs them.

Licences: the mask paper's and MusicTI's repositories are MIT; TechJam's has no licence file, so its
LoRA is downloaded for the tests on the user's own machine and never shipped or re-hosted.

This module is the one place that names the shared folder (``tests/test_layering.py`` checks it).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from pipelines.models import originals

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CACHE = ROOT / ".cache" / "real-data"

MASK_PAPER = ("CappiePappies/Mask-Based-Diffusion-for-Music-Generation-From-Everyday-Sounds",
              "db815f8b789b0a0a3e08c4c4c456212622d6c06e")
MUSICTI = (originals.MUSICTI, originals.MUSICTI_SHA)  # the app fetches its styles from the same commit
_LORA = originals.ORIGINALS["m2i_lora"].files[0]  # the app's own pin of the TechJam LoRA

HOW_TO_GET = ("the original projects' files are not here: run `make real-data` (downloads 12 MB from their public "
              "GitHub repositories) or set STUDIO_REAL_DATA to a folder holding them")


@dataclass(frozen=True)
class RealFile:
    """One published file: where it lies under the real-data folder and where it comes from."""

    path: str  # relative to the real-data folder
    repo: str  # GitHub owner/name
    commit: str
    source: str  # path inside the repository at ``commit``
    sha256: str
    size: int  # bytes

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{urllib.parse.quote(self.source)}"


def _mask_paper(name: str, generated: str, sha_in: str, sha_out: str) -> list[RealFile]:
    return [RealFile(f"mask-paper/everyday/{name}.wav", *MASK_PAPER, f"Samples/everyday_sound/{name}.wav", sha_in, 451044),
            RealFile(f"mask-paper/generated/{name}_output.wav", *MASK_PAPER, f"Datasets/Generated-Music/Outputs/{generated}",
                     sha_out, 450746)]


# The paper's outputs are named differently upstream; matched to their inputs by git blob id.
MANIFEST: tuple[RealFile, ...] = tuple(
    _mask_paper("clock_tick", "tickingoutput.wav",
                "27665ddcde6910ec08cfefa03135b20e38849e7d99d6882fa2d021282e7e2262",
                "ad0694a5db97cc7fd334106d1b71065b4f677e386b7137d4b8fdaf07a2170c84")
    + _mask_paper("cuckoo", "cuckooclockoutput.wav",
                  "fe9b6c18814042d63d487045880915fe325732a25c12bada86879cdcc4dee0ef",
                  "df2d04d2b53c8a22f28002bf0738351d0d135d830ad3b69d2bd0f8a61a399c79")
    + _mask_paper("geese", "geese_music.wav",
                  "a8e01579d3514b12b40263e3b0ed588d411c698fad79146cdde1facdd3371e13",
                  "5d50c8e87d9796b06d0757f447f36169c8821376719a6b9aebef33b81d94a746")
    + _mask_paper("loud_honking", "LoudHonking_music.wav",
                  "0a2efe4a1f9941a651568265aec588bf3b589f40d50d4b928cd5df2c3e808dcd",
                  "127c832c191ab120cf643919e4d9dbf5723a58d2f3156e61f6d21753cf884347")
    + _mask_paper("mario_kart", "mariooutput.wav",
                  "d0c78f7de5955434712a2a60e61f76e514e8240372f934233515616a0d435e3e",
                  "625441b06f84d086c931d5d8c7845eded6eed14ac76a9bdb6a8f10257e4d0256")
    + _mask_paper("train_passing", "trainpassby.wav",
                  "1ff19ddf1878147b4f2f418ab41ba20951b58f7c44f5b95e8465943365af7853",
                  "459dde4cd9163490520f00a04a408056d1bc3d9a3981529aa6caa37e536a5464")
    + [
        RealFile("musicti/audio/accordion.wav", *MUSICTI, "audios/style/accordion/accordion.wav",
                 "c43bd33144fdfa992d04d7de8c2979e98df1a647b251a79a8f2b834f85a9242f", 239788),
        RealFile("musicti/audio/chime1.wav", *MUSICTI, "audios/style/chime/chime1.wav",
                 "ed4a6f85f1fa2cdc174225cc884e30c4b4d9bb6cabe14671ad8c29f17bb097c1", 239788),
        RealFile("musicti/audio/color1.wav", *MUSICTI, "audios/content/color/color1.wav",
                 "59c270c823da6d989904db0e1374bfd1057f2e16acafb6834f0a66416e36198e", 442446),
        RealFile("musicti/audio/violin1.wav", *MUSICTI, "audios/content/violin/violin1.wav",
                 "de314196b4b6187e4f65a87411415d0b8022ab1221647bdbf4b7c3a9ca184574", 481614),
        RealFile("musicti/audio/generated_accordion_chime_0.5_violin1.wav", *MUSICTI,
                 "assets/samples/s_0_5_0_5_c_violin/violin/audios/violin1.wav",
                 "8bd1e13d255f8e5e388ee0c6245740faa48868f7e5ad65eea6700a1c54a0f54e", 450746),
        RealFile("musicti/images/accordion.png", *MUSICTI, "images/style/accordion/accordion.png",
                 "e5a93e0b3b216261da423bfb043b3d9c88fb35773ff2f23acfc76fe22c99c7b3", 212496),
        RealFile("musicti/images/color1.png", *MUSICTI, "images/content/color/color1.png",
                 "8297112d006063ef79e026bbd7738afdf1e81c4e2957f5550ad3975bdab62109", 184082),
        RealFile("musicti/images/violin1.png", *MUSICTI, "images/content/violin/violin1.png",
                 "f53481650156203ea3dddbf1f274102475c766398dc9f4c9788d7f6c0202b794", 212367),
        RealFile("musicti/images/generated_accordion_chime_0.5_violin1.png", *MUSICTI,
                 "assets/samples/s_0_5_0_5_c_violin/violin/images/violin1.png",
                 "3d74afd0b9d8d69dc6cfb76143429153fc5d5aa0230ff9e5e7e7be1fb03779ce", 404415),
        # plain git blob (not LFS), so the raw host serves the file itself
        RealFile("techjam/pytorch_lora_weights.safetensors", _LORA.repo, _LORA.commit, _LORA.path, _LORA.sha256,
                 _LORA.size),
    ]
)


def _complete(folder: Path, parts: tuple[str, ...]) -> bool:
    """Whether ``folder`` holds the manifest files under ``parts`` (all of them when ``parts`` is empty)."""
    wanted = [f for f in MANIFEST if not parts or f.path.startswith("/".join(parts) + "/") or f.path == "/".join(parts)]
    return bool(wanted) and all((folder / f.path).is_file() for f in wanted)


def find_real_data(*parts: str) -> Path | None:
    """The real-data folder holding ``parts`` (e.g. ``"mask-paper"``; all files when empty), or None.

    Looks in ``$STUDIO_REAL_DATA``, the shared folder's ``data/real``, then the fetch cache (module doc).
    """
    candidates = [Path(os.environ["STUDIO_REAL_DATA"])] if os.environ.get("STUDIO_REAL_DATA") else []
    candidates += [SHARED / "data" / "real", CACHE]
    for folder in candidates:
        if _complete(folder, parts):
            return folder
    return None


def find_hub_reference() -> Path | None:
    """The captured Hub configurations (``$STUDIO_HUB_REFERENCE``, else the shared folder's ``reference/hub``)."""
    folder = Path(os.environ.get("STUDIO_HUB_REFERENCE") or SHARED / "reference" / "hub")
    return folder if folder.is_dir() else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(dest: Path = CACHE, items: tuple[RealFile, ...] = MANIFEST, timeout: float = 60.0) -> list[Path]:
    """Download every file of ``items`` missing from ``dest``; returns the paths written.

    Each file is written to a temporary name and kept only when its size and SHA-256 match.
    Raises ``RuntimeError`` naming the file and URL on a network error or a mismatch.
    """
    written = []
    for item in items:
        target = dest / item.path
        if target.is_file() and _sha256(target) == item.sha256:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".part-")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(item.url, timeout=timeout) as response:
                while block := response.read(1 << 20):
                    out.write(block)
            size, digest = os.path.getsize(tmp), _sha256(Path(tmp))
            if size != item.size or digest != item.sha256:
                raise RuntimeError(f"{item.path}: {item.url} gave {size} bytes with sha256 {digest}; expected "
                                   f"{item.size} bytes with sha256 {item.sha256}. The file was not kept.")
            os.replace(tmp, target)
            written.append(target)
        except OSError as error:
            raise RuntimeError(f"{item.path}: could not download {item.url} ({error}).") from error
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.real_data", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["fetch", "where"])
    args = parser.parse_args(argv)
    if args.command == "fetch":
        try:
            written = fetch()
        except RuntimeError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        print(f"{len(written)} files downloaded; {len(MANIFEST)} files in {CACHE}")
        return 0
    folder = find_real_data()
    print(folder if folder else HOW_TO_GET)
    return 0 if folder else 1


if __name__ == "__main__":
    raise SystemExit(main())
