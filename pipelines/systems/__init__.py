"""What the app does: one module per system (the facade, pipelines/studio.py, routes to them)."""
