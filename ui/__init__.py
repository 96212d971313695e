"""The Gradio UI: one module per tab (``build(studio)``), shared wiring in ``common``.

Tabs convert widgets to arguments and results to widgets. They call ``pipelines.studio.Studio`` and
read the pipelines' settings dataclasses for their controls; they never touch a torch device.
"""
