"""The report's table pages: HTML for `snakemake --report`, which shows HTML, not CSV.

Each page holds what its table means (:data:`TABLE_NOTES`), a short view of the table (scores
and comparisons wide: one row per model x method x prompt, one column per dataset, the value
with its interval) and the CSV itself as a download, so the report stays one self-contained
file. The run's configuration gets a page too: a reader of the report sees what produced it.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.analysis.tables import read_scores, read_table
from biomedquant.common.files import write_text
from biomedquant.report.figures.style import Order, dataset_order, dataset_title, marked_changes

if TYPE_CHECKING:
    import pandas as pd

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 13px; margin: 1em; color: #222; }}
table {{ border-collapse: collapse; }}
th, td {{ border: 1px solid #ccc; padding: 2px 6px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; position: sticky; top: 0; }}
td:first-child, th:first-child {{ text-align: left; }}
p.note {{ max-width: 60em; }}
table.wrap td {{ white-space: normal; text-align: left; max-width: 60em; }}
pre {{ background: #f6f6f6; padding: 0.8em; }}
</style></head><body>
<h2>{title}</h2>
{body}
</body></html>
"""

TABLE_NOTES = {
    "scores": "Primary metric of every run as score [bootstrap interval], on the metric's 0-1 "
    "scale; one row per model, method and prompting method, with the share of unparsable "
    "answers and the score on the parsed answers alone where some did not parse. The full tidy "
    "table (every metric, n, parse-failure rate, value_on_parsed) is the CSV below.",
    "comparisons": "Change of the primary metric from the unquantized baseline in points "
    "(x100) with its paired-bootstrap interval; * marks p < 0.05 after a Benjamini-Hochberg "
    "adjustment over every cell of the table (as the change heatmap's stars). The full table "
    "(every metric, unadjusted p-values, flip rates) is the CSV below.",
    "memory": "Memory per model and method: the fit estimator (est_*), and what the runs "
    "measured (weights in the deployment dtype, peak GPU and host memory, size on disk).",
    "recommendation": "Per model, the candidate with the least GPU memory that is shown "
    "non-inferior to the baseline (its loss smaller than its task's margin) on every task under "
    "the deployed prompting methods ('prompts'), with Holm's procedure across the candidates "
    "keeping the family-wise error at alpha; controls (round-to-nearest, methods marked "
    "control) are measured, never recommended; when none passes, the baseline. A verdict is a "
    "one-sided bound of the change at alpha, pooled over the task's datasets by a stratified "
    "paired bootstrap (an exact bound for accuracy when fewer than 10 units changed); the "
    "detectable loss is the smallest loss the test would catch with 80% power. The evidence "
    "table lists every test, with each candidate's control beside it.",
    "deployment_choice": "What to deploy on each GPU (or CPU) of recommendation.deploy_on: per "
    "model and over all models, the best-scoring model x method (mean primary metric over tasks "
    "under the deployed prompting methods) that runs there and fits (90% of each GPU; several "
    "GPUs where named) among those the recommendation showed non-inferior to their baseline. "
    "When none of those fits, the status says plainly that the best that fits is not shown "
    "non-inferior. 'deploy' is the folder to serve.",
}


def _csv_link(csv_path: Path) -> str:
    import base64

    data = base64.b64encode(csv_path.read_bytes()).decode("ascii")
    return (
        f'<p><a download="{html.escape(csv_path.name)}" '
        f'href="data:text/csv;base64,{data}">Download {html.escape(csv_path.name)}</a></p>'
    )


def _fmt_ci(v: float, lo: float, hi: float, scale: float = 1.0, sign: bool = False) -> str:
    if math.isnan(v):
        return ""
    f = "+.1f" if sign else ".3f"
    if math.isnan(lo) or math.isnan(hi):
        return f"{v * scale:{f}}"
    return f"{v * scale:{f}} [{lo * scale:{f}}, {hi * scale:{f}}]"


def _number(value: Any) -> float:
    """A table cell as a float (NaN when empty or not a number)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _parse_note(rate: Any, on_parsed: Any) -> str:
    """ " (5% unparsable; 0.71 on parsed)" where some answers did not parse, else nothing."""
    rate, parsed = _number(rate), _number(on_parsed)
    if not rate > 0:
        return ""
    return f" ({100 * rate:.0f}% unparsable" + (
        ")" if math.isnan(parsed) else f"; {parsed:.2f} on parsed)"
    )


def summary_table(kind: str, csv_path: str | Path) -> pd.DataFrame:
    """The report's view of a table: wide and short where the CSV is long (scores and
    comparisons: one row per model x method x prompt, one column per dataset)."""
    if kind in ("scores", "comparisons"):
        df = read_scores(csv_path, primary_only=True)
        if df.empty:
            return df
        if kind == "scores":
            # beside each score, its parse failures and the score on the parsed answers alone,
            # so a reader sees whether the answers or their format moved it
            rates = df["parse_failure_rate"] if "parse_failure_rate" in df else [0.0] * len(df)
            parsed = df["value_on_parsed"] if "value_on_parsed" in df else [None] * len(df)
            df["cell"] = [
                _fmt_ci(v, lo, hi) + _parse_note(rate, on_parsed)
                for v, lo, hi, rate, on_parsed in zip(
                    df["value"], df["ci_low"], df["ci_high"], rates, parsed, strict=True
                )
            ]
        else:
            # the change heatmap's stars: adjusted over every cell with a change
            df["cell"] = [
                _fmt_ci(d, lo, hi, 100, sign=True) + ("*" if marked else "")
                for d, lo, hi, marked in zip(
                    df["diff"],
                    df["diff_ci_low"],
                    df["diff_ci_high"],
                    marked_changes(df),
                    strict=True,
                )
            ]
        order = Order().with_data(df)
        wide = df.pivot_table(
            index=["model", "method", "prompt"], columns="dataset", values="cell", aggfunc="first"
        )
        wide = wide.reindex(columns=dataset_order(wide.columns))
        wide.columns = [dataset_title(c) for c in wide.columns]
        keys = sorted(
            wide.index,
            key=lambda k: (
                order.models.index(k[0]),
                order.methods.index(k[1]),
                order.prompts.index(k[2]),
            ),
        )
        return wide.reindex(keys).reset_index()
    return read_table(csv_path)


def _html_table(table: pd.DataFrame) -> str:
    return table.to_html(index=False, na_rep="", float_format=lambda v: f"{v:.4g}")


def write_table_page(
    kind: str,
    csv_path: str | Path,
    out_path: str | Path,
    *,
    evidence_path: str | Path | None = None,
    names: dict[str, str] | None = None,
) -> None:
    """An HTML page for the report (which shows HTML, not CSV): the table, what it holds, and
    the CSV itself as a download. The recommendation is shown one model at a time (field and
    value: its evidence is long text), followed by its evidence table when given. ``names``:
    each method's display name, shown beside its slug (the CSV keeps the slug alone)."""
    csv_path = Path(csv_path)
    table = _with_names(summary_table(kind, csv_path), names)
    body = f'<p class="note">{html.escape(TABLE_NOTES.get(kind, ""))}</p>'
    body += _csv_link(csv_path)
    if evidence_path is not None:
        body += _csv_link(Path(evidence_path))
    if table.empty:
        body += "<p><em>The table has no rows.</em></p>"
    elif kind == "recommendation":
        for _, row in table.iterrows():
            fields = row.drop("model").reset_index()
            fields.columns = ["field", "value"]
            body += f"<h3>{html.escape(str(row['model']))}</h3>"
            body += _html_table(fields).replace("<table", '<table class="wrap"', 1)
        if evidence_path is not None:
            body += "<h3>Evidence: change per task and prompting method (points)</h3>"
            body += _html_table(_with_names(read_table(evidence_path), names))
    else:
        body += _html_table(table)
    title = f"{kind.capitalize()} table ({csv_path.name})"
    write_text(out_path, _PAGE.format(title=html.escape(title), body=body))


# Columns of the tables that hold a method's slug.
METHOD_COLUMNS = ("method", "baseline", "recommended", "lowest_loss_bound_method")


def _with_names(table: Any, names: dict[str, str] | None) -> Any:
    """The table with each method slug shown as ``Display name (slug)``."""
    if not names or table.empty:
        return table
    out = table.copy()
    for col in METHOD_COLUMNS:
        if col in out:
            out[col] = [
                f"{names[v]} ({v})" if isinstance(v, str) and names.get(v, v) != v else v
                for v in out[col]
            ]
    return out


def write_config_page(config: dict[str, Any], out_path: str | Path) -> None:
    """The run's configuration as validated (schema defaults filled in), for the report."""
    import yaml

    text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    body = (
        '<p class="note">The configuration this run used, after validation against '
        "workflow/schemas/config.schema.yaml (defaults filled in). docs/reference/config.md "
        "explains every key.</p>"
        f"<pre>{html.escape(text)}</pre>"
    )
    write_text(out_path, _PAGE.format(title="Run configuration", body=body))


# The tables with a page, and the report category of each (the others go under "Tables").
TABLE_PAGES = tuple(TABLE_NOTES)
PAGE_CATEGORIES = {"recommendation": "Recommendation", "deployment_choice": "Recommendation"}


def page_category(kind: str) -> str:
    """The report category of a table's page."""
    return PAGE_CATEGORIES.get(kind, "Tables")
