"""The report's table pages: the scores page sets the parse failures and the score on the
parsed answers beside each score, so a reader sees which of the two moved."""

from __future__ import annotations

from biomedquant.common.files import write_csv
from biomedquant.evaluation.scoring import TABLE_COLUMNS
from biomedquant.report.figures.style import dataset_title
from biomedquant.report.pages import summary_table


def test_the_scores_page_shows_parse_failures_and_the_score_on_parsed_answers(tmp_path):
    rows = []
    for method, rate, parsed in (("none", 0.0, 0.62), ("q4", 0.05, 0.66)):
        rows.append(
            dict.fromkeys(TABLE_COLUMNS)
            | {
                "model": "m",
                "method": method,
                "dataset": "medqa",
                "task": "qa",
                "prompt": "zero-shot",
                "metric": "accuracy",
                "value": 0.62 if method == "none" else 0.627,
                "ci_low": 0.6,
                "ci_high": 0.65,
                "n": 100,
                "parse_failure_rate": rate,
                "value_on_parsed": parsed,
                "primary": True,
            }
        )
    path = tmp_path / "scores.csv"
    write_csv(path, list(TABLE_COLUMNS), rows)
    table = summary_table("scores", path).set_index("method")
    cells = table[dataset_title("medqa")]
    assert "unparsable" not in cells["none"]
    assert cells["q4"].endswith("(5% unparsable; 0.66 on parsed)")
