"""Adjusting a family of p-values for being read together.

The change heatmap (and the comparison table's page) mark the cells whose change from the
baseline is unlikely to be chance. At the paper's scale that is about 4,800 cells (models x
methods x datasets x prompting methods); marked at an unadjusted p < 0.05, about 240 of them
would be marked with no true change anywhere, and a reader could not tell which.

The report adjusts with Benjamini-Hochberg (:data:`REPORT_ADJUSTMENT`), controlling the false
discovery rate, the expected share of marked cells without a true change, at the level the
stars use (5%). Why not Holm (family-wise error, the chance of marking any cell without a true
change):

* The stars are for reading the grid (where did something change?), not a decision: the
  decision a lab takes is the recommendation's, with its own error control over the
  candidates. A share of false stars is the error that matters for reading.
* Holm cannot mark anything here. The p-values are paired-bootstrap p-values (1,000 resamples
  in ``config/paper.yaml``), so the smallest possible is 2/1001 = 0.002, while Holm's first
  threshold over 4,800 cells is 0.05/4,800 = 0.00001. Benjamini-Hochberg marks the cells at
  0.002 when there are enough of them (at 4,800 cells, about 190 or more), which is what a
  method that truly changes many cells produces, and marks nothing for a lone small p-value.

Benjamini-Hochberg holds for independent p-values and for positively dependent ones (PRDS);
the cells share models and test items, and their dependence is mostly of that kind (a damaged
model moves many cells the same way). :func:`holm` is here for a family where the error of
any single false mark is what counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REPORT_ADJUSTMENT = "Benjamini-Hochberg"
"""The adjustment the report's stars use (named in the figure and its caption)."""


def _valid(p_values: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError("p-values must be one-dimensional")
    ok = ~np.isnan(p)
    if ((p[ok] < 0) | (p[ok] > 1)).any():
        raise ValueError("p-values must lie in [0, 1]")
    return p, ok


def benjamini_hochberg(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values, in the order given: a cell's adjusted p-value is
    below ``q`` exactly when the step-up procedure at false discovery rate ``q`` rejects it.

    NaN (no test: a cell without a p-value) stays NaN and is not counted in the family.
    Equal to statsmodels' ``multipletests(p, method="fdr_bh")[1]`` on the non-NaN values.
    """
    p, ok = _valid(p_values)
    out = np.full(p.shape, np.nan)
    values = p[ok]
    m = len(values)
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    scaled = values[order] * m / np.arange(1, m + 1)
    # step-up: each sorted p takes the smallest scaled value at or after it
    adjusted = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    ranked = np.empty(m)
    ranked[order] = adjusted
    out[ok] = ranked
    return out


def holm(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm adjusted p-values, in the order given: below ``alpha`` exactly when Holm's
    step-down procedure at family-wise error ``alpha`` rejects the cell.

    NaN stays NaN and is not counted. Equal to statsmodels' ``multipletests(p,
    method="holm")[1]`` on the non-NaN values.
    """
    p, ok = _valid(p_values)
    out = np.full(p.shape, np.nan)
    values = p[ok]
    m = len(values)
    if m == 0:
        return out
    order = np.argsort(values, kind="stable")
    scaled = values[order] * (m - np.arange(m))
    # step-down: each sorted p takes the largest scaled value at or before it
    adjusted = np.minimum(1.0, np.maximum.accumulate(scaled))
    ranked = np.empty(m)
    ranked[order] = adjusted
    out[ok] = ranked
    return out


def report_adjusted(p_values: Sequence[float] | np.ndarray) -> np.ndarray:
    """The p-values adjusted as the report's stars read them (:data:`REPORT_ADJUSTMENT`)."""
    return benjamini_hochberg(p_values)
