"""Command-line tools around the studio: ``python -m studio batch ...`` (see ``studio.batch``)."""
