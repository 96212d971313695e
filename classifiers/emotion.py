"""Emotify emotion CNN (TechJam, after the A2E base model), layer by layer; loads the original .h5."""

from __future__ import annotations

import classifiers  # noqa: F401  (KERAS_BACKEND=torch before keras)

from pathlib import Path

from . import features
from .keras_model import KerasClassifier, build_on, find_weights_file, load_into, saved_layers
from core.errors import ModelUnavailableError

# The original's index order (its mapping had leading spaces, " amazement", ...; stripped here).
EMOTIONS = (
    "amazement", "solemnity", "tenderness", "nostalgia", "calmness", "power", "joyfulness", "tension", "sadness",
)
WEIGHTS_FILE = "emotion_model.h5"
INPUT_SHAPE = features.EMOTION_INPUT_SHAPE  # (1024, 431, 1)
FILTERS = (64, 64, 128, 128, 256, 256, 384, 512, 256)  # the nine conv layers of the original
POOL_AFTER = (1, 3)  # MaxPool(2x2) + Dropout(0.3) after the 2nd and the 4th conv


def build_model(
    filters: tuple[int, ...] = FILTERS, num_classes: int = len(EMOTIONS), input_shape: tuple[int, ...] = INPUT_SHAPE
):
    """Conv(5x5, s2, valid)+BN, Conv(3x3)+BN, MaxPool+Dropout, 2x(Conv+BN), MaxPool+Dropout,
    5x(Conv 3x3 same + BN), Flatten, Dense(softmax): the original's 12 "layers"."""
    import keras
    from keras import layers

    if len(filters) != 9:
        raise ValueError("The emotion CNN has nine conv layers.")
    stack = [keras.Input(shape=input_shape),
             layers.Conv2D(filters[0], (5, 5), strides=2, activation="relu", padding="valid"),
             layers.BatchNormalization()]
    for index, width in enumerate(filters[1:], start=1):
        stack += [
            layers.Conv2D(width, (3, 3), strides=1, activation="relu", padding="same"),
            layers.BatchNormalization(),
        ]
        if index in POOL_AFTER:
            stack += [layers.MaxPooling2D((2, 2)), layers.Dropout(0.3)]
    stack += [layers.Flatten(), layers.Dense(num_classes, activation="softmax")]
    return keras.Sequential(stack, name="emotion_cnn")


def load(location: str | Path, device: str = "cpu") -> KerasClassifier:
    """The emotion classifier from a folder holding emotion_model.h5 (or that file), on ``device``
    ("cpu" by default; the device manager may pass "cuda")."""
    path = find_weights_file(location, WEIGHTS_FILE)
    saved = saved_layers(path)
    convs = [layer.shapes[0] for layer in saved if len(layer.shapes[0]) == 4]
    dense = [layer.shapes[0] for layer in saved if len(layer.shapes[0]) == 2]
    if len(convs) != 9 or len(dense) != 1 or len(saved) != 19 or convs[0][:2] != (5, 5):
        raise ModelUnavailableError(
            f"{path} is not the TechJam emotion CNN (9 conv + 9 batch-norm + 1 dense layers); "
            f"it has {len(convs)} conv and {len(dense)} dense layers in {len(saved)} weighted layers."
        )
    num_classes = dense[0][1]
    if num_classes != len(EMOTIONS):
        raise ModelUnavailableError(f"{path} has {num_classes} outputs; the emotion labels are {len(EMOTIONS)}.")
    model = build_on(device, lambda: build_model(tuple(c[3] for c in convs), num_classes))
    model = load_into(model, path, "emotion classifier")
    return KerasClassifier(model, EMOTIONS, features.emotion_features, path, device)
