"""Command-line tools kept apart from the pipelines (``python -m scripts.NAME``)."""
