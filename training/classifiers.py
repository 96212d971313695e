"""Train the genre or the emotion CNN from labelled audio, with the same features as inference.

    python -m training.classifiers genre  DATA_DIR --out models/genre    # GTZAN: DATA_DIR/<genre>/*.wav
    python -m training.classifiers emotion --csv labels.csv --out models/emotion   # rows: path,label
    python -m training.classifiers emotion --emotify data.csv --data emotify/ --output models/emotion

Defaults are the originals' (TechJam's notebooks): genre Adam lr 1e-3, 50 epochs, batch 32; emotion
Adam lr 5e-4, batch 8, 30 epochs. ``--data``/``--output``/``--seed``/``--max-steps``/``--profile`` are
the flags every recipe in ``training/`` takes (Keras places its own tensors: these CNNs train on one
device, not through accelerate). The CNNs start from random weights, so ``--profile`` only picks their
widths: ``tiny`` trains the tiny profile's narrow CNNs (seconds), ``hub`` and ``fullsize`` the originals'.
``--max-steps`` stops after that many batches (optimizer steps), whatever the epochs. Emotify's ratings file (``data.csv``: one row per listener and track, 0/1 per emotion)
becomes one label per track, the emotion most listeners ticked (``emotify_items``).

A folder has one sub-folder per label (GTZAN's ``genres_original`` layout); a CSV has a header
``path,label`` (paths relative to the CSV's folder), e.g. Emotify's tracks with their majority
emotion. Labels must be the app's labels (``genre.GENRES`` / ``emotion.EMOTIONS``): the model
always has all of their outputs, so the saved .h5 loads in the app whatever subset was trained.
Tracks, not segments, are split into train and held-out sets (the original split segments, so
segments of one track were on both sides). Writes ``Genre_classifier_model.h5`` or
``emotion_model.h5`` into ``--out`` and prints the held-out accuracy.
"""

from __future__ import annotations

import classifiers  # noqa: F401  (KERAS_BACKEND=torch before keras)

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from classifiers import emotion, features, genre
from pipelines.signal import audio as audio_io
from pipelines.models.registry import PROFILES
from core.errors import InputError, command_line
from training.data import AUDIO_SUFFIXES

ALIASES = {"hiphop": "hip-hop", "hip_hop": "hip-hop", "joyful": "joyfulness", "joyful_activation": "joyfulness"}


@dataclass(frozen=True)
class Task:
    name: str
    labels: tuple[str, ...]
    module: object
    segment_samples: int
    to_input: object
    learning_rate: float
    batch_size: int
    epochs: int


TASKS = {
    # genre: the GTZAN notebook's Adam(learning_rate=0.001), epochs=50, batch_size=32
    "genre": Task("genre", genre.GENRES, genre, features.GENRE_SEGMENT_SAMPLES, features.genre_input, 1e-3, 32, 50),
    "emotion": Task(
        "emotion", emotion.EMOTIONS, emotion, features.EMOTION_SEGMENT_SAMPLES, features.emotion_input, 5e-4, 8, 30
    ),
}


@dataclass(frozen=True)
class TrainResult:
    path: Path  # the saved .h5
    accuracy: float  # held-out segments
    track_accuracy: float  # held-out tracks, segment probabilities averaged as at inference
    train_tracks: int
    validation_tracks: int
    labels: tuple[str, ...]  # the labels that had data


def _label(task: Task, raw: str) -> str:
    name = raw.strip().lower()
    name = ALIASES.get(name, name)
    if name not in task.labels:
        raise InputError(f"Unknown {task.name} label {raw!r}: use one of {', '.join(task.labels)}.")
    return name


def list_items(task: Task, data_dir: Path | None = None, csv_path: Path | None = None,
               emotify_csv: Path | None = None) -> list[tuple[Path, str]]:
    """(audio file, label) pairs from a folder of label folders, a ``path,label`` CSV, or Emotify's
    ratings (``emotify_csv`` with the audio under ``data_dir``), sorted."""
    items: list[tuple[Path, str]] = []
    if emotify_csv is not None:
        if task.name != "emotion":
            raise InputError("Emotify's ratings label emotions: use the emotion task.")
        if data_dir is None:
            raise InputError("Give the Emotify audio folder (--data) with the ratings.")
        items = emotify_items(emotify_csv, data_dir)
    elif csv_path is not None:
        with open(csv_path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if rows and not {"path", "label"} <= set(rows[0]):
            raise InputError(f"{csv_path} needs a header 'path,label'.")
        items = [((csv_path.parent / row["path"]).resolve(), _label(task, row["label"])) for row in rows]
    elif data_dir is not None:
        for folder in sorted(p for p in Path(data_dir).iterdir() if p.is_dir()):
            label = _label(task, folder.name)
            items += [(f, label) for f in sorted(folder.rglob("*")) if f.suffix.lower() in AUDIO_SUFFIXES]
    else:
        raise InputError("Give a data folder or a CSV.")
    missing = [str(p) for p, _ in items if not p.is_file()]
    if missing:
        raise InputError(f"{len(missing)} listed files do not exist, e.g. {missing[0]}.")
    if len({label for _, label in items}) < 2 or len(items) < 3:
        raise InputError("Training needs at least three tracks of at least two labels.")
    return sorted(items)


EMOTIFY_GENRES = ("classical", "rock", "electronic", "pop")  # track ids 1-100, 101-200, 201-300, 301-400


def emotify_items(ratings_csv: str | Path, audio_root: str | Path) -> list[tuple[Path, str]]:
    """(audio file, majority emotion) per track from Emotify's ``data.csv``.

    Each row is one listener's answers for one track: ``track id``, ``genre`` and a 0/1 column per
    emotion (``joyful_activation`` is our ``joyfulness``); the header has spaces after the commas.
    A track's label is the emotion ticked by most of its listeners (ties: the first in
    ``emotion.EMOTIONS``). Audio: ``audio_root/<genre>/<n>.<ext>`` with n = (track id - 1) % 100 + 1,
    as the dataset ships (mp3; wav/flac copies are found too). Errors name the missing column or file.
    """
    ratings_csv, audio_root = Path(ratings_csv), Path(audio_root)
    task = TASKS["emotion"]
    with open(ratings_csv, newline="") as handle:
        reader = csv.reader(handle)
        header = [h.strip().lower() for h in next(reader, [])]
        rows = list(reader)
    columns = {name: header.index(name) for name in header}
    emotion_columns = {ALIASES.get(name, name): index for name, index in columns.items()
                       if ALIASES.get(name, name) in task.labels}
    missing = [c for c in ("track id", "genre") if c not in columns] + \
        [e for e in task.labels if e not in emotion_columns]
    if missing:
        raise InputError(f"{ratings_csv} is not Emotify's ratings file: no column {', '.join(missing)}.")
    votes: dict[int, np.ndarray] = {}
    genres: dict[int, str] = {}
    for number, row in enumerate(rows, start=2):
        if not row or not "".join(row).strip():
            continue
        try:
            track = int(row[columns["track id"]])
            counts = np.array([float(row[emotion_columns[e]]) for e in task.labels])
        except (ValueError, IndexError) as error:
            raise InputError(f"{ratings_csv} line {number} cannot be read: {error}") from error
        votes[track] = votes.get(track, 0) + counts
        genres[track] = row[columns["genre"]].strip().lower()
    if not votes:
        raise InputError(f"{ratings_csv} holds no ratings.")
    items = []
    for track in sorted(votes):
        stem = audio_root / genres[track] / str((track - 1) % 100 + 1)
        path = next((stem.with_suffix(s) for s in (".mp3", ".wav", ".flac", ".ogg") if stem.with_suffix(s).is_file()),
                    None)
        if path is None:
            raise InputError(f"No audio for Emotify track {track}: expected {stem}.mp3.")
        items.append((path, task.labels[int(np.argmax(votes[track]))]))
    return items


def track_inputs(task: Task, path: Path) -> np.ndarray:
    sound = audio_io.load_audio(path, features.SAMPLE_RATE, channels=1, max_seconds=None, allow_silence=True)
    return task.to_input(features.segments(sound.samples[0], task.segment_samples))


def split(items: list, validation: float, seed: int) -> tuple[list, list]:
    """Shuffle tracks with ``seed`` and hold out ``validation`` of them (at least one)."""
    order = np.random.default_rng(seed).permutation(len(items))
    held = max(1, int(round(validation * len(items))))
    return [items[i] for i in order[held:]], [items[i] for i in order[:held]]


def train(
    task_name: str,
    data_dir: str | Path | None = None,
    out: str | Path = "trained",
    *,
    csv_path: str | Path | None = None,
    emotify_csv: str | Path | None = None,
    epochs: int | None = None,
    validation: float = 0.2,
    seed: int = 0,
    filters: tuple[int, ...] | None = None,
    batch_size: int | None = None,
    learning_rate: float | None = None,
    profile: str = "hub",
    max_steps: int | None = None,
    verbose: int = 0,
) -> TrainResult:
    """Train one classifier; ``filters`` narrows the convs (the default is the original's widths, or the
    tiny profile's with ``profile="tiny"``); ``epochs``, ``batch_size`` and ``learning_rate`` default to
    the task's original values; ``max_steps`` stops after that many batches."""
    import keras

    if task_name not in TASKS:
        raise InputError(f"Unknown task {task_name!r}: use genre or emotion.")
    if not 0 < validation < 1:
        raise InputError("The held-out fraction must be between 0 and 1.")
    if profile not in PROFILES:
        raise InputError(f"Unknown profile {profile!r}: use one of {', '.join(PROFILES)}.")
    if max_steps is not None and max_steps < 1:
        raise InputError(f"--max-steps must be at least 1; got {max_steps}.")
    task = TASKS[task_name]
    if filters and (len(filters) != len(task.module.FILTERS) or min(filters) < 1):
        count = len(task.module.FILTERS)
        raise InputError(f"The {task_name} CNN needs {count} positive conv widths; got {tuple(filters)}.")
    items = list_items(task, Path(data_dir) if data_dir else None, Path(csv_path) if csv_path else None,
                       Path(emotify_csv) if emotify_csv else None)
    train_items, held_items = split(items, validation, seed)

    def stack(part):
        xs, ys, owners = [], [], []
        for index, (path, label) in enumerate(part):
            x = track_inputs(task, path)
            xs.append(x)
            ys += [task.labels.index(label)] * len(x)
            owners += [index] * len(x)
        return np.concatenate(xs), np.asarray(ys), np.asarray(owners)

    x_train, y_train, _ = stack(train_items)
    x_held, y_held, owners = stack(held_items)

    keras.utils.set_random_seed(seed)
    from pipelines.models.building.tiny import TINY_CLASSIFIER_WIDTHS

    widths = dict(TINY_CLASSIFIER_WIDTHS[task_name]) if profile == "tiny" else {}
    if filters:
        widths["filters"] = tuple(filters)
    model = task.module.build_model(**widths)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=learning_rate or task.learning_rate),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    callbacks = [_StopAfter(max_steps)] if max_steps else []
    model.fit(x_train, y_train, epochs=epochs or task.epochs, batch_size=batch_size or task.batch_size, shuffle=True,
              verbose=verbose, callbacks=callbacks)

    probabilities = np.asarray(model.predict(x_held, verbose=0))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == y_held))
    track_hits = [probabilities[owners == i].mean(axis=0).argmax() == task.labels.index(label)
                  for i, (_, label) in enumerate(held_items)]
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / task.module.WEIGHTS_FILE
    model.save(str(path))
    return TrainResult(path, accuracy, float(np.mean(track_hits)), len(train_items), len(held_items),
                       tuple(sorted({label for _, label in items})))


def _StopAfter(steps: int):
    """A Keras callback ending ``fit`` after ``steps`` batches (Keras 3 checks ``stop_training`` per batch)."""
    import keras

    class StopAfter(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = 0

        def on_train_batch_end(self, batch, logs=None):
            self.seen += 1
            if self.seen >= steps:
                self.model.stop_training = True

    return StopAfter()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training.classifiers", description=__doc__.split("\n\n")[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("data_dir", nargs="?", help="folder with one sub-folder of audio per label")
    parser.add_argument("--data", dest="data_option", help="the same folder, as the other recipes name it")
    parser.add_argument("--csv", dest="csv_path", help="CSV with a header path,label instead of a folder")
    parser.add_argument("--emotify", dest="emotify_csv", help="Emotify's ratings data.csv (audio under --data)")
    parser.add_argument("--out", "--output", dest="out", required=True, help="folder to write the .h5 into")
    parser.add_argument("--epochs", type=int, help="default: the original's (genre 50, emotion 30)")
    parser.add_argument("--validation", type=float, default=0.2, help="fraction of tracks held out")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--learning-rate", type=float)
    parser.add_argument("--filters", help="comma-separated conv widths (3 for genre, 9 for emotion)")
    parser.add_argument("--profile", choices=PROFILES, default="hub",
                        help="the CNNs' widths: tiny (the tiny profile's), hub or fullsize (the originals')")
    parser.add_argument("--max-steps", type=int, help="stop after this many batches (default: all epochs)")
    args = parser.parse_args(argv)
    filters = tuple(int(v) for v in args.filters.split(",")) if args.filters else None
    try:
        with command_line():
            result = train(args.task, args.data_dir or args.data_option, args.out, csv_path=args.csv_path,
                           emotify_csv=args.emotify_csv, epochs=args.epochs, validation=args.validation,
                           seed=args.seed, filters=filters, batch_size=args.batch_size,
                           learning_rate=args.learning_rate, profile=args.profile, max_steps=args.max_steps,
                           verbose=2)
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"trained on {result.train_tracks} tracks, held out {result.validation_tracks} "
          f"({', '.join(result.labels)})")
    print(f"held-out accuracy: {result.accuracy:.3f} (segments), {result.track_accuracy:.3f} (tracks)")
    print(f"saved {result.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
