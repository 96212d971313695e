"""Command-line tools around the studio: ``python -m studio batch ...`` (see ``studio.batch``)."""

from core.numba_cache import numba_cache_for

numba_cache_for("batch")  # before numba is imported: processes side by side never share its cache
