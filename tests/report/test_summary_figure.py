"""The report's first figure says what the verdicts say: each dot carries the interval the
verdicts read and its verdict's marker, so a row of dots left of the margin whose tests are
"insufficient evidence" does not read as "loses more than the margin"."""

from __future__ import annotations

import math

import pandas as pd

from biomedquant.analysis.tables import read_verdicts
from biomedquant.report.figures import summary
from biomedquant.report.figures.registry import FIGURES
from biomedquant.report.figures.summary import combined_verdict, dot_evidence

PROMPTS = ("zero-shot", "five-shot")


def comparisons() -> pd.DataFrame:
    """Two models x two methods (a candidate and a control) on relation extraction, two
    datasets x two prompting methods; every change -2 points, intervals +-1.5 points."""
    rows = []
    for model in ("m1", "m2"):
        for method in ("gptq-w4", "rtn-w4"):
            for dataset in ("chemprot", "ddi"):
                for prompt in PROMPTS:
                    rows.append(
                        {
                            **{"model": model, "method": method, "baseline": "none"},
                            **{"dataset": dataset, "task": "re", "prompt": prompt},
                            **{"metric": "macro_f1", "primary": True, "diff": -0.02},
                            **{"diff_ci_low": -0.035, "diff_ci_high": -0.005},
                            **{"p_value": 0.01, "n": 500},
                        }
                    )
    return pd.DataFrame(rows)


def evidence() -> pd.DataFrame:
    """The candidate's tests (the control has none): m1 insufficient evidence on both
    prompting methods (no lower bound), m2 inconclusive on one and non-inferior on the
    other."""
    rows = []
    for model, prompt, verdict, low, high in (
        ("m1", "zero-shot", "insufficient evidence", math.nan, 0.4),
        ("m1", "five-shot", "insufficient evidence", math.nan, 0.2),
        ("m2", "zero-shot", "inconclusive", -3.1, -0.6),
        ("m2", "five-shot", "non-inferior", -0.9, 0.1),
    ):
        rows.append(
            {
                **{"model": model, "method": "gptq-w4", "baseline": "none", "task": "re"},
                **{"prompt": prompt, "delta_points": -2.0, "margin_points": 1.5},
                **{"lower_bound_points": low, "upper_bound_points": high, "verdict": verdict},
            }
        )
    return pd.DataFrame(rows)


def test_the_verdict_over_prompting_methods_is_the_recommendations_reading():
    assert combined_verdict(["non-inferior", "non-inferior"]) == "non-inferior"
    assert combined_verdict(["non-inferior", "inferior", "insufficient evidence"]) == "inferior"
    assert combined_verdict(["non-inferior", "inconclusive"]) == "inconclusive"
    assert combined_verdict(["inconclusive", "insufficient evidence"]) == "insufficient evidence"
    assert combined_verdict([]) is None and combined_verdict([math.nan]) is None


def test_each_dot_carries_the_bounds_the_verdicts_read():
    dots = dot_evidence(comparisons(), evidence()).round(6).set_index(["method", "model"])
    m1, m2 = dots.loc[("gptq-w4", "m1")], dots.loc[("gptq-w4", "m2")]
    assert m1["change"] == -2.0 and m2["change"] == -2.0
    # m2: from the lowest lower bound to the highest upper bound over prompting methods
    assert (m2["low"], m2["high"], m2["verdict"]) == (-3.1, 0.1, "inconclusive")
    # m1: no test gives a lower bound, so the comparison table's gives it; the verdict says
    # the tests could not tell
    assert (m1["low"], m1["high"], m1["verdict"]) == (-3.5, 0.4, "insufficient evidence")
    # the control: the comparison table's intervals, no verdict
    control = dots.loc[("rtn-w4", "m1")]
    assert (control["low"], control["high"], control["verdict"]) == (-3.5, -0.5, None)
    # without the evidence table every dot has its comparisons interval and no verdict
    bare = dot_evidence(comparisons(), read_verdicts(None))
    assert bare["verdict"].isna().all() and (bare["low"].round(6) == -3.5).all()


def test_the_figure_draws_lines_and_verdict_markers(tmp_path, monkeypatch):
    comp, ev = tmp_path / "comparisons.csv", tmp_path / "evidence.csv"
    comparisons().to_csv(comp, index=False)
    evidence().to_csv(ev, index=False)
    assert FIGURES["summary"].inputs == ("comparisons", "memory", "evidence")
    drawn = {}
    monkeypatch.setattr(summary, "save_figure", lambda fig, paths: drawn.update(fig=fig))
    summary.plot_summary(comp, None, ev, [tmp_path / "summary.png"])
    fig = drawn["fig"]
    (ax,) = [a for a in fig.axes if a.get_title()]
    # one horizontal line per dot (4) spanning its interval, besides the median bars
    spans = sorted(
        tuple(round(float(x), 6) for x in line.get_xdata())
        for line in ax.get_lines()
        if len(line.get_xdata()) == 2 and line.get_xdata()[0] != line.get_xdata()[1]
    )
    assert spans == sorted([(-3.5, 0.4), (-3.1, 0.1), (-3.5, -0.5), (-3.5, -0.5)])
    # the margin drawn is the one tested
    assert any(list(line.get_xdata()) == [-1.5, -1.5] for line in ax.get_lines())
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == [
        "inconclusive",
        "insufficient evidence",
        "no verdict (interval from the comparisons)",
    ]
