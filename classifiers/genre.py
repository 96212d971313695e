"""GTZAN genre CNN (TechJam), layer by layer as the original; loads the original .h5 unchanged."""

from __future__ import annotations

import classifiers  # noqa: F401  (KERAS_BACKEND=torch before keras)

from pathlib import Path

from . import features
from .keras_model import KerasClassifier, build_on, find_weights_file, load_into, saved_layers
from core.errors import ModelUnavailableError

GENRES = ("blues", "classical", "country", "disco", "hip-hop", "jazz", "metal", "pop", "reggae", "rock")
WEIGHTS_FILE = "Genre_classifier_model.h5"
INPUT_SHAPE = features.GENRE_INPUT_SHAPE  # (259, 13, 1)
FILTERS = (32, 64, 128)  # the original's widths; tiny test models use fewer
DENSE_UNITS = 64
KERNELS = ((3, 3), (3, 3), (2, 2))


def build_model(filters: tuple[int, int, int] = FILTERS, dense_units: int = DENSE_UNITS, num_classes: int = len(GENRES),
                input_shape: tuple[int, ...] = INPUT_SHAPE):
    """Conv(3x3) -> MaxPool(3x3, s2, same) -> Conv(3x3) -> MaxPool -> Conv(2x2) -> Flatten ->
    Dense(relu) -> Dropout(0.1) -> Dense(softmax), as the original."""
    import keras
    from keras import layers

    return keras.Sequential(
        [
            keras.Input(shape=input_shape),
            layers.Conv2D(filters[0], KERNELS[0], activation="relu"),
            layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same"),
            layers.Conv2D(filters[1], KERNELS[1], activation="relu"),
            layers.MaxPooling2D((3, 3), strides=(2, 2), padding="same"),
            layers.Conv2D(filters[2], KERNELS[2], activation="relu"),
            layers.Flatten(),
            layers.Dense(dense_units, activation="relu"),
            layers.Dropout(0.1),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="genre_cnn",
    )


def load(location: str | Path, device: str = "cpu") -> KerasClassifier:
    """The genre classifier from a folder holding Genre_classifier_model.h5 (or that file), on ``device``
    ("cpu" by default; the device manager may pass "cuda")."""
    path = find_weights_file(location, WEIGHTS_FILE)
    saved = saved_layers(path)
    shapes = [layer.shapes[0] for layer in saved]
    if len(saved) != 5 or [s[:2] for s in shapes[:3]] != [tuple(k) for k in KERNELS] or len(shapes[3]) != 2:
        raise ModelUnavailableError(
            f"{path} is not the TechJam genre CNN (3 conv + 2 dense layers with 3x3, 3x3, 2x2 kernels); "
            f"its weighted layers have kernels {shapes}."
        )
    num_classes = shapes[4][1]
    if num_classes != len(GENRES):
        raise ModelUnavailableError(f"{path} has {num_classes} outputs; the genre labels are {len(GENRES)}.")
    model = build_on(device, lambda: build_model(tuple(s[3] for s in shapes[:3]), shapes[3][1], num_classes))
    model = load_into(model, path, "genre classifier")
    return KerasClassifier(model, GENRES, features.genre_features, path, device)
