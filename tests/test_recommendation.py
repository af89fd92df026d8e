"""Verdicts (non-inferior / inferior / inconclusive, Holm) and the recommendation, on hand-made
comparison records whose resampled differences are planted."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from biomedquant.cli import main
from biomedquant.datasets.registry import DATASETS
from biomedquant.io import write_json
from biomedquant.recommendation import recommend
from biomedquant.verdicts import holm, holm_levels, pooled_draws, task_tests


def record(method: str, dataset: str, draws_points, *, prompt="zero-shot", model="m", diff=None):
    """A comparison record as `biomedquant compare` writes it (primary metric only)."""
    draws = np.asarray(draws_points, dtype=float) / 100
    return {
        "model": model,
        "method": method,
        "baseline": "none",
        "dataset": dataset,
        "task": DATASETS[dataset].task,
        "prompt": prompt,
        "primary_metric": "x",
        "metrics": {"x": {"diff": float(draws.mean()) if diff is None else diff}},
        "primary_diff_draws": list(draws),
    }


def planted(n_below: int, below: float = -2.0, b: int = 999) -> np.ndarray:
    """``b`` resampled changes (points): ``n_below`` at ``below``, the rest at 0.
    The non-inferiority p-value at margin 1 is then exactly (n_below + 1) / (b + 1)."""
    return np.array([below] * n_below + [0.0] * (b - n_below))


def memory_table(rows):
    """(model, method, est_total_gb, peak_gpu_allocated_gb or None)."""
    return pd.DataFrame(
        [
            {"model": m, "method": meth, "est_total_gb": est, "peak_gpu_allocated_gb": peak}
            for m, meth, est, peak in rows
        ]
    )


def test_holm_hand_computed():
    # sorted 0.01, 0.03, 0.04: x3 = 0.03, x2 = 0.06, x1 = 0.04 -> running max 0.06
    assert list(holm([0.01, 0.04, 0.03])) == pytest.approx([0.03, 0.06, 0.06])
    assert list(holm_levels([0.01, 0.04, 0.03], 0.05)) == pytest.approx([0.05 / 3, 0.05, 0.025])
    assert list(holm([0.5, 0.9])) == pytest.approx([1.0, 1.0])


def test_three_verdicts_and_the_minimum_detectable_loss():
    rng = np.random.default_rng(0)
    recs = [
        record("good", "medqa", rng.normal(0.0, 0.2, 2000)),  # clearly within 1 point
        record("bad", "medqa", rng.normal(-3.0, 0.2, 2000)),  # clearly loses 3
        record("unsure", "medqa", rng.normal(-0.8, 1.5, 2000)),  # cannot tell
    ]
    rows = {r["method"]: r for r in task_tests(recs, margin_points=1.0)}
    assert rows["good"]["verdict"] == "non-inferior"
    assert rows["bad"]["verdict"] == "inferior"
    assert rows["unsure"]["verdict"] == "inconclusive"
    good = rows["good"]
    # one test per family: its bound is the plain 5% quantile, the MDL minus that bound
    assert good["lower_bound_points"] == pytest.approx(-0.2 * 1.645, abs=0.05)
    assert good["min_detectable_loss_points"] == pytest.approx(-good["lower_bound_points"])
    assert rows["bad"]["upper_bound_points"] < -1 < rows["unsure"]["upper_bound_points"]
    # a gain: the smallest margin is 0, not negative
    (gain,) = task_tests([record("q", "medqa", rng.normal(2.0, 0.2, 500))])
    assert gain["min_detectable_loss_points"] == 0.0


def test_holm_step_turns_a_lone_pass_inconclusive_and_keeps_a_strong_pair():
    # p = 40/1000 = 0.04 on its own: non-inferior at alpha 0.05
    (alone,) = task_tests([record("q", "medqa", planted(39))])
    assert alone["p_noninferior"] == pytest.approx(0.04)
    assert alone["verdict"] == "non-inferior"
    # the same test beside a second one of p = 0.04 (another task): Holm gives 0.08 to both
    pair = task_tests([record("q", "medqa", planted(39)), record("q", "hoc", planted(39))])
    assert [r["p_noninferior_holm"] for r in pair] == pytest.approx([0.08, 0.08])
    assert {r["verdict"] for r in pair} == {"inconclusive"}
    # beside a strong test (p = 0.001): step-down, 0.002 then 0.04, both pass
    # (Bonferroni would give the weaker one 0.08)
    pair = task_tests([record("q", "medqa", planted(0)), record("q", "hoc", planted(39))])
    assert [r["p_noninferior_holm"] for r in pair] == pytest.approx([0.002, 0.04])
    assert {r["verdict"] for r in pair} == {"non-inferior"}
    # families are per model x method: another method's tests do not count
    other = task_tests([record("q", "medqa", planted(39)), record("r", "hoc", planted(39))])
    assert {r["verdict"] for r in other} == {"non-inferior"}


def test_task_change_pools_datasets_by_stratified_bootstrap():
    d1, d2 = np.array([-1.0, 0.0, 1.0, 2.0]), np.array([3.0, 1.0, -1.0, 1.0])
    assert list(pooled_draws([d1, d2])) == pytest.approx([1.0, 0.5, 0.0, 1.5])
    assert len(pooled_draws([d1, d2[:3]])) == 3
    assert len(pooled_draws([d1, []])) == 0
    (row,) = task_tests(
        [record("q", "medqa", d1, diff=-0.02), record("q", "pubmedqa", d2, diff=0.0)]
    )
    assert row["task"] == "qa" and row["n_datasets"] == 2 and row["datasets"] == "medqa,pubmedqa"
    assert row["delta_points"] == pytest.approx(-1.0)  # mean of -2 and 0 points
    assert row["resamples"] == 4


def test_per_task_margin_overrides_and_bad_settings_are_refused():
    recs = [record("q", "bc5cdr_chem", planted(0, b=199) - 1.5)]  # every draw -1.5 points
    (r,) = task_tests(recs, margin_points=1.0)
    assert r["verdict"] == "inferior"
    (r,) = task_tests(recs, margin_points=1.0, task_margin_points={"ner": 2.0})
    assert r["verdict"] == "non-inferior" and r["margin_points"] == 2.0
    with pytest.raises(ValueError, match="alpha"):
        task_tests(recs, alpha=0.7)
    with pytest.raises(ValueError, match="margin"):
        task_tests(recs, margin_points=-1)


def _records(spec: dict[str, np.ndarray], prompts=("zero-shot",)) -> list[dict]:
    """One record per method x dataset x prompt with the given draws (points)."""
    return [
        record(method, d, draws, prompt=p)
        for method, draws in spec.items()
        for d in DATASETS
        for p in prompts
    ]


MEMORY = memory_table(
    [
        ("m", "none", 17.0, None),
        ("m", "q8", 9.5, None),
        ("m", "q4", 6.0, None),
        ("m", "q3", 5.0, None),
    ]
)


def test_recommends_the_least_memory_method_non_inferior_everywhere():
    rng = np.random.default_rng(1)
    recs = _records(
        {
            "q8": rng.normal(-0.1, 0.1, 1000),
            "q4": rng.normal(-0.3, 0.1, 1000),
            "q3": rng.normal(-3.0, 0.3, 1000),
        }
    )
    rec, evidence = recommend(recs, MEMORY)
    (r,) = rec.itertuples()
    assert r.recommended == "q4" and r.verdict.startswith("non-inferior")
    assert r.memory_gb == 6.0 and r.smallest_gpu_gb == 24 and r.memory_source == "estimated"
    assert r.non_inferior.startswith("q4 (6 GB); q8 (9.5 GB)")
    assert "q3: 4 inferior" in r.not_non_inferior
    assert pd.isna(r.not_shown_to_lose)
    assert r.min_detectable_loss_method == "q4"
    worst_lb = evidence[evidence["method"] == "q4"]["lower_bound_points"].min()
    assert r.min_detectable_loss_points == pytest.approx(-worst_lb)
    assert "qa zero-shot -0.3" in r.evidence and "non-inferior" in r.evidence
    assert len(evidence) == 3 * 4  # methods x tasks (one prompt)
    assert set(evidence["verdict"]) == {"non-inferior", "inferior"}


def test_none_non_inferior_names_the_method_not_shown_to_lose():
    rng = np.random.default_rng(2)
    recs = _records(
        {
            "q8": rng.normal(-0.5, 1.2, 1000),  # inconclusive: too noisy to tell
            "q4": rng.normal(-0.6, 1.2, 1000),
            "q3": rng.normal(-4.0, 0.3, 1000),  # inferior
        }
    )
    rec, evidence = recommend(recs, MEMORY)
    (r,) = rec.itertuples()
    assert r.recommended == "none" and r.memory_gb == 17.0
    assert r.verdict.startswith("no method shown non-inferior")
    assert r.not_shown_to_lose == "q4" and r.not_shown_to_lose_memory_gb == 6.0
    assert r.min_detectable_loss_method == "q4" and r.min_detectable_loss_points > 1.0
    assert "q4: 4 inconclusive" in r.not_non_inferior


def test_missing_evidence_or_memory_disqualifies_and_measured_memory_wins():
    rng = np.random.default_rng(3)
    good = rng.normal(0.0, 0.1, 500)
    recs = _records({"q4": good, "q3": good}, prompts=("zero-shot", "cot"))
    # q4 lacks the qa task under cot (both QA datasets dropped)
    recs = [
        r for r in recs if not (r["method"] == "q4" and r["task"] == "qa" and r["prompt"] == "cot")
    ]
    memory = memory_table([("m", "none", 150.0, 141.0), ("m", "q4", 40.0, 38.0)])
    rec, _ = recommend(recs, memory)
    (r,) = rec.itertuples()
    assert r.recommended == "none" and r.memory_gb == 141.0 and r.memory_source == "measured"
    assert pd.isna(r.smallest_gpu_gb)  # 141 GB fits no single common GPU
    assert "q4: no comparison for qa cot" in r.not_non_inferior
    assert "q3: memory unknown" in r.not_non_inferior
    assert r.evidence.startswith("the baseline itself")


def test_recommend_cli_writes_verdicts_and_minimum_detectable_loss(tmp_path):
    rng = np.random.default_rng(4)
    files = []
    for i, rec in enumerate(
        _records({"gptq-w8g128": rng.normal(-0.1, 0.2, 300), "gptq-w3g128": rng.normal(-5, 1, 300)})
    ):
        files.append(tmp_path / f"c{i}.json")
        write_json(files[-1], rec)
    mem = tmp_path / "memory.csv"
    memory_table(
        [
            ("m", "none", 17.0, None),
            ("m", "gptq-w8g128", 9.0, None),
            ("m", "gptq-w3g128", 4.0, None),
        ]
    ).to_csv(mem, index=False)
    out, ev = tmp_path / "rec.csv", tmp_path / "ev.csv"
    args = ["recommend", "--memory", str(mem), "--out", str(out), "--evidence-out", str(ev)]
    assert main([*args, "--task-margin", "ner=2", *map(str, files)]) == 0
    (row,) = list(csv.DictReader(out.open()))
    assert row["recommended"] == "gptq-w8g128" and row["margin_points"] == "1 (ner 2)"
    assert float(row["min_detectable_loss_points"]) > 0
    evidence = list(csv.DictReader(ev.open()))
    assert {e["verdict"] for e in evidence} == {"non-inferior", "inferior"}
    assert {e["margin_points"] for e in evidence if e["task"] == "ner"} == {"2.0"}
    assert main([*args, "--task-margin", "ner", *map(str, files)]) != 0


def test_a_model_ranked_on_one_memory_source_for_all_its_methods():
    """A model whose 4-bit method was measured on a GPU but whose baseline was not is ranked
    on estimates for both: a measured peak beside an estimate would favour the measured one."""
    from biomedquant.results import deployment_memory

    memory = memory_table([("m", "none", 17.0, None), ("m", "q4", 6.0, 4.2)])
    both = memory_table([("n", "none", 17.0, 15.1), ("n", "q4", 6.0, 4.2)])
    mem = deployment_memory(pd.concat([memory, both], ignore_index=True))
    by = {(r.model, r.method): (r.memory_gb, r.memory_source) for r in mem.itertuples()}
    assert by["m", "none"] == (17.0, "estimated") and by["m", "q4"] == (6.0, "estimated")
    assert by["n", "none"] == (15.1, "measured") and by["n", "q4"] == (4.2, "measured")
