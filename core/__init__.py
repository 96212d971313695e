"""What every layer shares and nothing else: the project's error types (``core.errors``).

Imports nothing from the project, so ``pipelines`` and ``classifiers`` can both use it without
importing each other.
"""
