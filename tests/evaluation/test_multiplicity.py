"""The adjustment of the report's stars (evaluation/stats/multiplicity.py): the procedures'
adjusted p-values, checked by hand and, where statsmodels is installed, against it."""

from __future__ import annotations

import math

import numpy as np
import pytest

from biomedquant.evaluation.stats.multiplicity import (
    REPORT_ADJUSTMENT,
    benjamini_hochberg,
    holm,
    report_adjusted,
)

NAN = float("nan")
# Benjamini and Hochberg's own example (JRSS B 1995, section 4.1): at q = 0.05 their
# procedure rejects the 4 smallest, Holm's the 3 smallest.
BH_1995 = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240,
           0.4262, 0.5719, 0.6528, 0.7590, 1.000]  # fmt: skip


def _close(a: np.ndarray, b: list[float]) -> bool:
    return all(
        (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, abs_tol=1e-12)
        for x, y in zip(a.tolist(), b, strict=True)
    )


def test_by_hand_in_the_order_given_nan_out_of_the_family():
    # m = 5: sorted 0.005 0.01 0.03 0.04 0.5
    p = [0.01, 0.04, 0.03, 0.005, NAN, 0.5]
    # BH: p * 5 / rank = .025 .025 .05 .05 .5, then the running minimum from the top
    assert _close(benjamini_hochberg(p), [0.025, 0.05, 0.05, 0.025, NAN, 0.5])
    # Holm: p * (5 - rank + 1) = .025 .04 .09 .08 .5, then the running maximum
    assert _close(holm(p), [0.04, 0.09, 0.09, 0.025, NAN, 0.5])


def test_ties_and_the_cap_at_one():
    p = [0.9, 0.8, 0.02, 0.02]
    assert _close(benjamini_hochberg(p), [0.9, 0.9, 0.04, 0.04])
    assert _close(holm(p), [1.0, 1.0, 0.08, 0.08])


def test_the_published_example():
    assert int((benjamini_hochberg(BH_1995) < 0.05).sum()) == 4
    assert int((holm(BH_1995) < 0.05).sum()) == 3
    assert set(np.flatnonzero(benjamini_hochberg(BH_1995) < 0.05)) == {0, 1, 2, 3}


def test_paper_scale_with_no_true_change_marks_almost_nothing():
    # 4,800 cells, bootstrap p-values at 1,000 resamples' resolution, no true change:
    # about 240 below 0.05 unadjusted, none after the adjustment
    rng = np.random.default_rng(0)
    p = np.minimum(1.0, (np.floor(rng.uniform(size=4800) * 1001 / 2) * 2 + 2) / 1001)
    assert 180 < int((p < 0.05).sum()) < 300
    assert int((report_adjusted(p) < 0.05).sum()) == 0
    # a method that truly changes 300 cells is still marked there
    p[:300] = 2 / 1001
    marked = report_adjusted(p) < 0.05
    assert marked[:300].all() and int(marked[300:].sum()) <= 15


def test_edge_cases():
    assert benjamini_hochberg([]).shape == (0,)
    assert _close(holm([NAN, NAN]), [NAN, NAN])
    assert _close(benjamini_hochberg([0.03]), [0.03])
    with pytest.raises(ValueError):
        benjamini_hochberg([1.2])
    assert REPORT_ADJUSTMENT == "Benjamini-Hochberg"


def test_equal_to_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(1)
    for p in (np.array(BH_1995), rng.uniform(size=200) ** 3, rng.uniform(size=50)):
        for ours, name in ((benjamini_hochberg, "fdr_bh"), (holm, "holm")):
            assert np.allclose(ours(p), multitest.multipletests(p, method=name)[1])
