"""The evaluate step's interval settings, declared once, in a module light enough for the
command line's argument parser to read.

They are the config's ``scoring.bootstrap_resamples``, ``ci_level`` and
``comparison_resamples`` (the schema's defaults are these values: a test holds them equal).
Comparisons take more resamples in a study: the verdicts' one-sided bound at alpha 0.05 is then
the 500th smallest of them rather than the 50th (:mod:`biomedquant.evaluation.stats.verdicts`).
"""

BOOTSTRAP_RESAMPLES = 1000
CI_LEVEL = 0.95
COMPARISON_RESAMPLES = 10_000
