"""Training recipes: one module per learned model, run as ``python -m training.<recipe>``.

Training sits above ``pipelines`` and ``classifiers`` (it reads audio with ``pipelines.signal.audio`` and
builds the classifiers it trains), so neither of those imports anything from here.
"""

from core.numba_cache import numba_cache_for

numba_cache_for("training")  # before numba is imported: processes side by side never share its cache
