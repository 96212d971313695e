"""Pipelines of the studio: plain Python, no gradio. See design.md for the shape."""
