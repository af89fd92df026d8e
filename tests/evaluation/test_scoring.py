"""score / compare files on real JSON Lines, the comparison tables, the per-label figure and the
noise floor (the baseline rerun at another batch size) from the files to the workflow's DAG."""

from __future__ import annotations

import csv
import re

import pytest

from biomedquant.cli import main
from biomedquant.common.files import read_json, write_jsonl
from biomedquant.evaluation.scoring import (
    aggregate_comparisons,
    aggregate_comparisons_by_label,
    compare_to_baseline,
)
from biomedquant.report.figures.registry import draw_figure

from conftest import copy_workflow, snakemake

GOLD = [
    {"id": f"DDI-DrugBank.d1.s{s}.p{p}", "text": "t", "label": lab}
    for s, labs in enumerate(
        [["DDI-false", "DDI-effect"], ["DDI-advise"], ["DDI-false", "DDI-false", "DDI-int"]] * 5
    )
    for p, lab in enumerate(labs)
]


def _write(tmp_path, name, labels):
    path = tmp_path / f"{name}.jsonl"
    write_jsonl(
        path, [{"id": g["id"], "prediction": lab} for g, lab in zip(GOLD, labels, strict=True)]
    )
    return path


@pytest.fixture
def ddi_files(tmp_path):
    gold = tmp_path / "gold.jsonl"
    write_jsonl(gold, GOLD)
    truth = [g["label"] for g in GOLD]
    base = _write(tmp_path, "base", truth)
    # the method misses every DDI-int; the rerun changes one answer
    other = _write(tmp_path, "q4", [("DDI-false" if t == "DDI-int" else t) for t in truth])
    rerun = _write(tmp_path, "rerun", ["DDI-effect", *truth[1:]])
    return tmp_path, gold, base, other, rerun


def _compare(folder, gold, base, other, out, **kw):
    return compare_to_baseline(
        baseline_path=base,
        predictions_path=other,
        gold_path=gold,
        dataset="ddi",
        out_path=folder / out,
        model="m",
        method=kw.pop("method", "q4"),
        baseline="none",
        prompt="zero-shot",
        resamples=200,
        **kw,
    )


def test_comparison_file_carries_clusters_flips_mcnemar_and_labels(ddi_files):
    folder, gold, base, other, _ = ddi_files
    c = _compare(folder, gold, base, other, "c.json")
    # one document: too few units to resample by, so the 30 pairs are resampled one by one
    assert c["bootstrap"]["unit"] == "item (only 1 x document: too few to resample)"
    assert c["bootstrap"]["units"] == 30 and c["changed_units"] == 5
    assert c["flips"]["correct_to_wrong"] == 5 and c["flips"]["wrong_to_correct"] == 0
    assert c["mcnemar_p"] == pytest.approx(2 / 32)  # 2 * C(5,0) / 2^5
    assert c["by_label"]["DDI-int"]["value"] == 0.0 and c["by_label"]["DDI-int"]["support"] == 5
    assert len(c["primary_diff_draws"]) == 200
    assert read_json(folder / "c.json")["metrics"]["macro_f1"]["diff"] < 0


def test_noise_floor_fills_columns_beside_every_method_and_draws(ddi_files):
    folder, gold, base, other, rerun = ddi_files
    _compare(folder, gold, base, other, "c.json")
    _compare(folder, gold, base, rerun, "nf.json", method="none@batch3", noise_floor=True)
    table = folder / "comparisons.csv"
    n = aggregate_comparisons([folder / "c.json", folder / "nf.json"], table)
    rows = list(csv.DictReader(table.open()))
    assert n == 3 and {r["method"] for r in rows} == {"q4"}  # the rerun is no method row
    assert [float(r["noise_floor_flip_rate"]) for r in rows] == pytest.approx([1 / 30] * 3)
    assert all(r["noise_floor_diff"] for r in rows) and all(r["mcnemar_p"] for r in rows)
    by_label = folder / "by_label.csv"
    assert (
        aggregate_comparisons_by_label([folder / "c.json", folder / "nf.json"], by_label) == 4
    )  # labels seen
    out = folder / "flip.png"
    draw_figure("flip_rate", {"comparisons": table}, [out])
    heat = folder / "by_label.png"
    draw_figure("change_by_label", {"comparisons_by_label": by_label}, [heat])
    assert out.stat().st_size > 5_000 and heat.stat().st_size > 5_000
    # the CLI offers the same
    args = ["compare", "--baseline-predictions", str(base), "--predictions", str(rerun)]
    args += ["--gold", str(gold), "--dataset", "ddi", "--out", str(folder / "cli.json")]
    args += ["--model", "m", "--method", "r", "--baseline", "none", "--prompt", "zero-shot"]
    assert main([*args, "--resamples", "50", "--noise-floor"]) == 0
    assert read_json(folder / "cli.json")["noise_floor"] is True


def test_noise_floor_plans_one_rerun_per_baseline_run(tmp_path, tiny_source):
    config = {
        "data": {"base_url": "demo"},
        "datasets": ["hoc", "ddi"],
        "models": {"tiny": {"source": "local", "path": str(tiny_source)}},
        "methods": {"none": {"kind": "none"}, "nf4": {"kind": "bnb-nf4"}},
        "prompts": ["zero-shot"],
        "noise_floor": {"batch_size": 3},
    }
    wd = tmp_path / "wd"
    wd.mkdir()
    copy_workflow(wd, config)
    proc = snakemake(wd, "-n", "-p")
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", proc.stdout.split("Job stats:")[1], re.M))
    # the rerun at batch 3 (one job for both datasets, as the baseline's) is read and compared
    # with the baseline in the baseline's evaluate job
    assert jobs["infer_noise_floor"] == "1" and jobs["evaluate_baseline"] == "1"
    assert '"batch_size": 3' in proc.stdout and '"noise_floor_label": "none@batch3"' in proc.stdout
    assert jobs["aggregate_comparisons_by_label"] == "1" and jobs["figure_change_by_label"] == "1"
