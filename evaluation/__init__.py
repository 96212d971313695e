"""Batch evaluation of the studio's systems by their papers' protocols: ``python -m evaluation <command>``.

Commands (``python -m evaluation <command> --help`` for every option):

* ``pair``: SSIM and chroma CENS of one input/output pair (``--mode paper`` or ``studio``), and the
  CLAP values with ``--clap``, as one JSON line.
* ``ablation``: the mask paper's ablation: a folder of sounds -> sound-to-music over downshift values
  (and brightness/contrast ones) -> per-file SSIM and CENS (``items.csv``), means with SEM
  (``summary.csv``), paired t-tests with Cohen's d between the values of each sweep (``ttests.csv``)
  and one plot per sweep (``<sweep>.png``).
* ``musicti``: MusicTI's protocol: each content clip x each single style and random style pairs at
  0.5/0.5 -> content preservation and style fit (mean and max).
* ``fad``: Fréchet audio distance (CLAP embeddings, fadtk's formula) of a folder of outputs against a
  reference folder, with the sample counts; the reference statistics are cached by content hash.

Items are sharded across processes under ``accelerate launch`` (each process writes its own
``items.<rank>-of-<n>.csv``; the first gathers them once all are done), and a rerun skips the items
already written, so an interrupted run resumes. Layering: ``evaluation`` sits on top of ``pipelines``
(like ``training``), never imports ``ui``, ``app`` or gradio, and nothing below imports it.
"""

from core.numba_cache import numba_cache_for

numba_cache_for("evaluation")  # before numba is imported: processes side by side never share its cache
