"""What the tiny and the full-size builders share: a cache that builds each model once, safely, and
the offline pieces a model folder needs (tokenizer vocabularies made without downloads, Keras
weights saved the way the originals were).

``ensure_built(target, build)`` runs ``build(folder)`` once per ``target`` under a file lock, into a
temporary folder renamed on success with a ``.complete`` marker, with torch's RNG seeded: parallel
test workers build once, and a crash halfway leaves nothing that looks finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

def studio_cache_root() -> Path:
    """``$STUDIO_CACHE``, else ``~/.cache/music-studio``: where every built profile keeps its models."""
    return Path(os.environ.get("STUDIO_CACHE") or Path.home() / ".cache" / "music-studio")


class ModelFamilies:
    """The model families one built profile can make, each cached as ``<cache>/<profile>/<family>-v<N>``.

    Register a builder with ``@families.builder("sd", version=2)``; ``ensure(family)`` builds it once
    (bump the version to rebuild everywhere after a change). ``has`` and ``ensure`` are what the
    registry asks of a builder (``models.ModelBuilder``).
    """

    def __init__(self, profile: str):
        self.profile = profile
        self.builders: dict[str, Callable[[Path], None]] = {}
        self.versions: dict[str, int] = {}

    def builder(self, family: str, version: int):
        def register(fn: Callable[[Path], None]):
            self.builders[family] = fn
            self.versions[family] = version
            return fn

        return register

    def has(self, family: str) -> bool:
        return family in self.builders

    def folder(self, family: str) -> Path:
        return studio_cache_root() / self.profile / f"{family}-v{self.versions[family]}"

    def is_built(self, family: str) -> bool:
        return (self.folder(family) / ".complete").exists()

    def ensure(self, family: str) -> Path:
        """The folder of ``family``'s model, built now if it is not in the cache yet. KeyError if unknown."""
        if family not in self.builders:
            raise KeyError(f"No {self.profile} model is defined for the family {family!r}.")
        return ensure_built(self.folder(family), self.builders[family])


def ensure_built(target: Path, build: Callable[[Path], None], seed: int = 0) -> Path:
    """``target``, built by ``build(folder)`` if it is not complete yet (shared with ``fullsize.py``).

    Under a lock per target, into a temporary folder beside it that is renamed when ``build``
    returns, with a ``.complete`` marker: parallel workers build once, and a crash halfway leaves
    nothing that looks finished. ``build`` runs with torch's RNG seeded (same weights everywhere).
    """
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(target.parent / f".{target.name}.lock"):
        if (target / ".complete").exists():  # another process built it while we waited
            return target
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            seeded(lambda: build(tmp), seed)
            (tmp / ".complete").write_text("ok\n")
            if target.exists():
                shutil.rmtree(target)
            tmp.rename(target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def remove_stale_builds(root: Path | None = None) -> list[Path]:
    """Remove the temporary build folders (``<cache>/<profile>/.<family>-v<N>-xxxx``) that a build killed
    halfway left behind (kill -9, a full disk: ``ensure_built``'s own cleanup never ran). A folder is
    stale when no process holds its target's lock, so a build in progress elsewhere keeps its folder.
    Returns the folders removed. Called at app start."""
    import fcntl

    removed = []
    root = Path(root or studio_cache_root())
    for profile in (p for p in root.iterdir() if p.is_dir()) if root.is_dir() else ():
        for tmp in profile.glob(".*-*"):
            if not tmp.is_dir():
                continue
            target = tmp.name[1:].rsplit("-", 1)[0]  # ".sd-v3-abc123" -> "sd-v3"
            lock = profile / f".{target}.lock"
            with open(lock, "a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # being built right now
                try:
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(tmp)
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
    return removed


class FileLock:
    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        import fcntl

        self.handle = open(self.path, "w")
        fcntl.flock(self.handle, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        import fcntl

        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


def seeded(fn: Callable[[], None], seed: int = 0) -> None:
    import torch

    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # same weights on every machine
    try:
        fn()
    finally:
        torch.random.set_rng_state(state)


def byte_level_alphabet() -> list[str]:
    """The 256 printable characters that byte-level BPE (GPT-2, CLIP) uses for the 256 byte values."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def randomize_keras(model, seed: int) -> None:
    """Deterministic weights without touching any global RNG; batch-norm variances stay positive."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        if "variance" in variable.path:
            values.append(rng.uniform(0.5, 2.0, shape).astype("float32"))
        else:
            fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
            values.append((rng.standard_normal(shape) / np.sqrt(fan_in)).astype("float32"))
    model.set_weights(values)


def save_keras_like_original(model, path: Path) -> None:
    """A full-model HDF5 with Adam's slots, like the originals' ``model.save(...h5)`` after fit."""
    import keras

    model.compile(optimizer=keras.optimizers.Adam(learning_rate=5e-4), loss="sparse_categorical_crossentropy")
    model.optimizer.build(model.trainable_variables)
    model.save(str(path))


CAPTION_WORDS = (  # common caption words, so tiny captions and prompts are not all single letters
    "a", "the", "of", "and", "with", "in", "on", "at", "to", "is", "are", "an", "two", "one", "man", "woman",
    "dog", "cat", "bird", "tree", "sky", "sea", "sun", "moon", "night", "day", "city", "street", "car",
    "house", "room", "table", "chair", "people", "girl", "boy", "child", "flower", "field", "mountain",
    "river", "water", "snow", "rain", "cloud", "light", "dark", "red", "blue", "green", "white", "black",
    "yellow", "sitting", "standing", "walking", "playing", "music", "song", "guitar", "piano", "drum",
    "calm", "happy", "sad", "slow", "fast", "loud", "soft", "warm", "cold", "old", "new", "big", "small",
    "beautiful", "painting", "photo", "picture",
)


def bert_wordpiece_vocab() -> list[str]:
    """A lowercase BERT WordPiece vocab: specials, whole words, single characters and ``##`` suffix
    characters, so every lowercase ASCII word can be spelled (BLIP's tokenizer is a BERT one)."""
    chars = [chr(c) for c in range(ord("!"), ord("~") + 1) if not chr(c).isupper()]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *CAPTION_WORDS,
            *[c for c in chars if c not in CAPTION_WORDS], *[f"##{c}" for c in chars]]


def t5_unigram_vocab() -> list[tuple[str, float]]:
    """T5's layout (<pad>, </s>, <unk>, pieces, then 100 sentinels in reverse) with whole-word pieces and
    every printable character as a fallback piece, scored like a SentencePiece unigram model."""
    chars = [chr(c) for c in range(ord("!"), ord("~") + 1)]
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    pieces += [(f"▁{w}", -5.0) for w in CAPTION_WORDS]
    pieces += [(c, -10.0) for c in chars] + [(f"▁{c}", -9.0) for c in chars]
    pieces += [(f"<extra_id_{i}>", 0.0) for i in range(99, -1, -1)]
    return pieces


def write_melody_preprocessor_config(folder: Path) -> None:
    """The 369-byte preprocessor_config.json facebook/musicgen-melody publishes (its values, our writing)."""
    config = {"chunk_length": 30, "feature_extractor_type": "MusicgenMelodyFeatureExtractor", "feature_size": 12,
              "hop_length": 4096, "n_fft": 16384, "n_samples": 960000, "padding_side": "right", "padding_value": 0.0,
              "processor_class": "MusicgenMelodyProcessor", "return_attention_mask": False, "sampling_rate": 32000,
              "stem_indices": [3, 2]}
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def spread_encodec_codebooks(model) -> None:
    """EnCodec's codebooks start at zero (the real ones come from k-means): every code would decode to the
    same sound, and no seed or prompt could change the audio. Random codebooks, for built MusicGen models."""
    import torch

    with torch.no_grad():
        for layer in model.audio_encoder.quantizer.layers:
            layer.codebook.embed.normal_()
            layer.codebook.embed_avg.copy_(layer.codebook.embed)
            layer.codebook.cluster_size.fill_(1.0)


# -- a CLIP tokenizer made offline, with merges for chosen words -------------------------------------
def clip_word_merges(words) -> list[tuple[str, str]]:
    """BPE merges that join each word left to right into one ``word</w>`` token (CLIP's end-of-word
    form). Every merge's result is a new vocabulary entry; a word whose pairs are claimed by an
    earlier word's merges still tokenizes, in more pieces."""
    merges: list[tuple[str, str]] = []
    for word in dict.fromkeys(words):
        pieces = [*word[:-1], word[-1] + "</w>"]
        joined = pieces[0]
        for piece in pieces[1:]:
            if (joined, piece) not in merges:
                merges.append((joined, piece))
            joined += piece
    return merges


def write_clip_tokenizer(folder: Path, words) -> int:
    """A working byte-level CLIP tokenizer: every byte is a token, plus one token per word of
    ``words`` (``clip_word_merges``). Returns the vocab size."""
    chars = byte_level_alphabet()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    merges = clip_word_merges(words)
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    tokenizer.save_pretrained(folder)
    return len(vocab)
