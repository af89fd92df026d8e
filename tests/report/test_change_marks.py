"""The change heatmap's and the comparison page's stars: p-values adjusted over every cell
shown (Benjamini-Hochberg), so that at the paper's ~4,800 cells chance alone marks almost
none, where unadjusted p < 0.05 would mark ~240."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from biomedquant.report.figures import comparisons
from biomedquant.report.figures.style import marked_changes
from biomedquant.report.pages import summary_table

DATASETS = ("bc5cdr_chem", "chemprot", "hoc", "medqa")
TASKS = {"bc5cdr_chem": "ner", "chemprot": "re", "hoc": "mlc", "medqa": "qa"}
METRICS = {"ner": "f1", "re": "macro_f1", "mlc": "macro_f1", "qa": "accuracy"}


def comparison_table(p_values: list[float], *, methods: int = 5) -> pd.DataFrame:
    """One primary row per p-value: models m0.., four datasets, ``methods`` methods, one
    prompting method; the change -0.01 everywhere."""
    rows = []
    for k, p in enumerate(p_values):
        dataset = DATASETS[k % len(DATASETS)]
        rows.append(
            {
                "model": f"m{k // (len(DATASETS) * methods)}",
                "method": f"q{(k // len(DATASETS)) % methods}",
                "baseline": "bf16",
                "dataset": dataset,
                "task": TASKS[dataset],
                "prompt": "zero-shot",
                "metric": METRICS[TASKS[dataset]],
                "baseline_value": 0.6,
                "value": 0.59,
                "diff": -0.01,
                "diff_ci_low": -0.02,
                "diff_ci_high": 0.0,
                "p_value": p,
                "flip_rate": 0.05,
                "n": 500,
                "primary": True,
            }
        )
    return pd.DataFrame(rows)


# 100 cells: three with p = 0.001 (adjusted 0.033), two at 0.03 (unadjusted stars only)
P_VALUES = [0.001] * 3 + [0.03] * 2 + list(np.linspace(0.2, 1.0, 95))


def test_only_what_survives_the_adjustment_is_marked():
    df = comparison_table(P_VALUES)
    marked = marked_changes(df)
    assert int((df["p_value"] < 0.05).sum()) == 5
    assert marked.tolist() == [True] * 3 + [False] * 97
    # the family is the cells with a test: of five, the two at 0.03 are marked too
    df.loc[5:, "p_value"] = np.nan
    assert marked_changes(df).tolist() == [True] * 5 + [False] * 95
    # a cell without a change is no test and not marked
    df.loc[3:4, "diff"] = np.nan
    assert marked_changes(df).tolist() == [True] * 3 + [False] * 97
    assert not marked_changes(df.drop(columns="p_value")).any()


def test_the_heatmap_stars_and_names_the_adjusted_cells(tmp_path, monkeypatch):
    path = tmp_path / "comparisons.csv"
    comparison_table(P_VALUES).to_csv(path, index=False)
    drawn = {}
    monkeypatch.setattr(comparisons, "save_figure", lambda fig, paths: drawn.update(fig=fig))
    comparisons.plot_change_heatmap(path, [tmp_path / "heatmap.png"])
    fig = drawn["fig"]
    starred = [t for ax in fig.axes for t in ax.texts if t.get_text().endswith("*")]
    assert len(starred) == 3
    title = fig._suptitle.get_text()
    assert "Benjamini-Hochberg" in title and "all 100 cells" in title


def test_the_comparison_page_marks_the_same_cells(tmp_path):
    path = tmp_path / "comparisons.csv"
    comparison_table(P_VALUES).to_csv(path, index=False)
    cells = summary_table("comparisons", path).drop(columns=["model", "method", "prompt"])
    assert int(cells.map(lambda c: str(c).endswith("*")).to_numpy().sum()) == 3


@pytest.mark.parametrize("name", ["change_heatmap.rst", "tables.rst"])
def test_the_captions_name_the_adjustment(name):
    text = (Path(__file__).resolve().parents[2] / "workflow" / "report" / name).read_text()
    assert "Benjamini-Hochberg" in text
