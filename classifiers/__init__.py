"""Music classifiers of the TechJam music-to-image system: genre (GTZAN), emotion (Emotify), tempo.

The two CNNs are the originals' Keras architectures, run by Keras 3 on the torch backend (the
app already ships torch; TensorFlow would add ~600 MB to the Space). The backend must be chosen
before the first ``import keras`` anywhere in the process, hence this line at package import.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "torch")
