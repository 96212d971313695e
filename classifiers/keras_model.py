"""Shared Keras plumbing for the two CNNs: reading the original .h5 files and whole-track prediction.

Why "build in code, then load_weights" rather than ``keras.models.load_model``: the original files
are full-model HDF5 saves (config + weights + Adam state, hence 246 MB for an ~82 MB model) made
by TensorFlow's Keras. Their weights group is read by position, layer after layer, which is the
same in Keras 2 and Keras 3 HDF5 files and needs no deserialisation of the saved config (so no
config-version drift, no TensorFlow-only objects, and nothing executable in a file someone
supplies). The layer widths are read from the file's weight shapes, so the same code loads the
real models and the tiny test models of the same layer types.
"""

from __future__ import annotations

import classifiers  # noqa: F401  (sets KERAS_BACKEND before keras is imported)

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from core.errors import InputError, ModelUnavailableError


def find_weights_file(location: str | Path, file_name: str) -> Path:
    """``location`` is the folder the registry gives (holding ``file_name``) or the .h5 file itself."""
    path = Path(location).expanduser()
    if path.is_dir():
        candidate = path / file_name
        if not candidate.is_file():
            found = sorted(p.name for p in path.glob("*.h5"))
            hint = f" It holds {', '.join(found)}." if found else ""
            raise ModelUnavailableError(f"{path} has no {file_name}.{hint}")
        return candidate
    if path.is_file():
        return path
    raise ModelUnavailableError(f"The model file or folder {path} does not exist.")


@dataclass(frozen=True)
class SavedLayer:
    name: str
    shapes: tuple[tuple[int, ...], ...]  # weight shapes in saved order (kernel first)


def saved_layers(path: Path) -> list[SavedLayer]:
    """The layers that hold weights in a Keras HDF5 file (full model or weights only), in order."""
    import h5py

    def text(value) -> str:
        return value.decode("utf8") if isinstance(value, bytes) else str(value)

    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "model_weights" in f else f
            layers = []
            for name in (text(n) for n in group.attrs.get("layer_names", [])):
                weight_names = [text(w) for w in group[name].attrs.get("weight_names", [])]
                if weight_names:
                    layers.append(SavedLayer(name, tuple(tuple(group[name][w].shape) for w in weight_names)))
    except (OSError, KeyError) as error:
        raise ModelUnavailableError(f"{path} is not a readable Keras HDF5 file: {error}") from error
    if not layers:
        raise ModelUnavailableError(f"{path} holds no Keras layer weights.")
    return layers


@dataclass(frozen=True)
class Prediction:
    """Class probabilities for a whole track (the mean over its segments)."""

    labels: tuple[str, ...]  # the model's own label order
    probabilities: np.ndarray  # (num_classes,), same order, sums to 1
    segments: int  # how many segments were averaged
    segment_probabilities: np.ndarray = field(repr=False)  # (segments, num_classes)

    def ranked(self) -> list[tuple[str, float]]:
        """(label, probability) from the most to the least likely; ties keep the label order."""
        order = np.argsort(-self.probabilities, kind="stable")
        return [(self.labels[i], float(self.probabilities[i])) for i in order]

    def top(self, k: int = 3) -> list[tuple[str, float]]:
        return self.ranked()[:k]

    @property
    def label(self) -> str:
        return self.ranked()[0][0]


class KerasClassifier:
    """A Keras model, its labels and its feature function: ``classify(samples)`` for a whole track."""

    def __init__(
        self,
        model,
        labels: tuple[str, ...],
        features: Callable[[np.ndarray], np.ndarray],
        path: Path | None = None,
        device: str = "cpu",
    ):
        outputs = int(model.output_shape[-1])
        if outputs != len(labels):
            raise ModelUnavailableError(f"The model has {outputs} outputs but {len(labels)} labels are known.")
        self.model = model
        self.labels = tuple(labels)
        self.features = features
        self.path = path
        self.device = device

    @property
    def nbytes(self) -> int:
        """Bytes of the Keras weights (what the About panel shows as the model's size)."""
        return sum(int(w.numpy().nbytes) for w in self.model.weights)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.model.input_shape[1:])

    def predict_features(self, batch: np.ndarray, batch_size: int = 8) -> np.ndarray:
        """(k, *input_shape) features -> (k, num_classes) probabilities; inference mode, no dropout."""
        import keras
        import torch

        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim != len(self.input_shape) + 1 or tuple(batch.shape[1:]) != self.input_shape:
            expected = ", ".join(map(str, self.input_shape))
            raise InputError(f"The classifier expects inputs shaped (k, {expected}), got {batch.shape}.")
        outputs = []
        with torch.no_grad(), keras.device(self.device):
            for start in range(0, len(batch), batch_size):
                out = self.model(batch[start : start + batch_size], training=False)
                out = out.detach().cpu().numpy() if hasattr(out, "detach") else out
                outputs.append(np.asarray(out, dtype=np.float64))
        return np.concatenate(outputs)

    def classify(self, samples: np.ndarray) -> Prediction:
        """Mono samples at 22050 Hz (any length) -> the mean of every segment's probabilities."""
        from core import runs

        features = self.features(samples)
        runs.raise_if_stopped()  # a cancelled run stops between the feature step and the network
        per_segment = self.predict_features(features)
        mean = per_segment.mean(axis=0)
        return Prediction(self.labels, mean / mean.sum(), len(per_segment), per_segment)


def build_on(device: str, build: Callable[[], object]):
    """Build a Keras model with its variables on ``device``. Keras' torch backend would otherwise
    put them on CUDA whenever it exists, behind the device manager's back (and on ZeroGPU)."""
    import keras

    with keras.device(device):
        return build()


def load_into(model, path: Path, what: str):
    """Load ``path``'s weights into ``model`` by layer order, with a clear error when they don't fit."""
    try:
        model.load_weights(str(path))
    except (ValueError, KeyError, OSError) as error:
        raise ModelUnavailableError(
            f"The {what} weights in {path} do not fit the original architecture: {error}"
        ) from error
    return model
