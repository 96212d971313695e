"""Audio, spectrogram and image code without models: decoding, windows, codecs, metrics."""
