"""The deployment answer (biomedquant.analysis.deployment, ``recommend --gpu-gb``): on a hand-built
study of two models whose verdicts, scores and memory are planted, each piece of hardware gets
what a person reading the tables would deploy."""

from __future__ import annotations

import csv

import numpy as np
import pandas as pd
import pytest

from biomedquant.analysis.deployment import (
    ALL_MODELS,
    deployment_rows,
    hardware_by_name,
    why_not_runnable,
)
from biomedquant.analysis.recommendation import recommend
from biomedquant.cli import main
from biomedquant.common.files import write_json
from biomedquant.common.gpus import Hardware, fit_text, gpus_needed, smallest_gpu
from biomedquant.datasets.registry import DATASETS

# (model, method) -> (kind, GPU GB, change in points: its draws' centre and spread)
STUDY = {
    ("big", "none"): ("none", 152.0, None),
    ("big", "gptq-w8g128"): ("gptq", 82.0, (-0.1, 0.1)),  # non-inferior
    ("big", "fp8"): ("fp8", 80.0, (-0.1, 0.1)),  # non-inferior
    ("big", "gptq-w4g128"): ("gptq", 45.5, (-0.3, 0.1)),
    ("big", "gptq-w3g128"): ("gptq", 38.0, (-0.6, 0.1)),
    ("big", "awq-w4g128"): ("awq", 30.0, (-4.0, 0.3)),  # inferior: never shown
    ("small", "none"): ("none", 17.0, None),
    ("small", "gptq-w8g128"): ("gptq", 10.0, (-0.2, 0.1)),
    ("small", "fp8"): ("fp8", 9.9, (-0.1, 0.1)),
    ("small", "gptq-w4g128"): ("gptq", 6.5, (-0.4, 0.1)),
    ("small", "awq-w4g128"): ("awq", 6.4, (-0.5, 0.1)),
}
BASELINE_SCORE = {"big": 0.70, "small": 0.60}


def _comparisons() -> list[dict]:
    rng = np.random.default_rng(0)
    out = []
    for (model, method), (_, _, change) in STUDY.items():
        if change is None:
            continue
        for dataset, spec in DATASETS.items():
            draws = rng.normal(change[0], change[1], 2000) / 100
            out.append(
                {
                    "model": model,
                    "method": method,
                    "baseline": "none",
                    "dataset": dataset,
                    "task": spec.task,
                    "prompt": "zero-shot",
                    "n": 1000,
                    "primary_metric": "x",
                    "metrics": {
                        "x": {
                            "baseline": BASELINE_SCORE[model],
                            "value": BASELINE_SCORE[model] + change[0] / 100,
                            "diff": change[0] / 100,
                        }
                    },
                    "primary_diff_draws": list(draws),
                    "changed_units": 100,
                    "bootstrap": {"units": 1000},
                }
            )
    return out


def _memory() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": m, "method": meth, "kind": kind, "est_total_gb": gb}
            for (m, meth), (kind, gb, _) in STUDY.items()
        ]
    )


@pytest.fixture(scope="module")
def study():
    rec, evidence = recommend(_comparisons(), _memory(), margin_points=1.0)
    return rec, evidence


def _answer(study, hardware: Hardware) -> dict[str, dict]:
    rec, evidence = study
    return {r["scope"]: r for r in deployment_rows(rec, evidence, _memory(), [hardware])}


def test_holm_leaves_what_a_person_would_expect(study):
    rec, _ = study
    pairs = zip(rec["model"], rec["shown_non_inferior"], strict=True)
    shown = {model: set(names.split(";")) for model, names in pairs}
    assert shown["big"] == {"gptq-w8g128", "fp8", "gptq-w4g128", "gptq-w3g128"}  # AWQ loses 4
    assert shown["small"] == {"gptq-w8g128", "fp8", "gptq-w4g128", "awq-w4g128"}


def test_a_40_gb_a100_runs_the_small_model_in_16_bit_and_the_big_one_in_3_bit(study):
    a = _answer(study, hardware_by_name("a100_40g"))
    # 16-bit fits (17 GB of 38.7 usable): nothing beats the reference's score
    assert a["small"]["method"] == "none" and a["small"]["status"] == "the baseline itself"
    assert a["small"]["score_points"] == pytest.approx(60.0) and a["small"]["gpus"] == 1
    assert "fp8: needs compute capability 8.9+ (this GPU: 8.0)" in a["small"]["excluded"]
    # 3-bit (38 GB) fits, is shown non-inferior and beats AWQ (30 GB), which loses 4 points
    big = a["big"]
    assert big["method"] == "gptq-w3g128" and big["status"] == "shown non-inferior"
    assert big["score_points"] == pytest.approx(69.4) and big["verdicts"] == "4 non-inferior"
    assert big["deploy"] == "resources/models/big/gptq-w3g128"
    assert "gptq-w4g128: needs 45.5 GB" in big["excluded"]
    assert (a[ALL_MODELS]["model"], a[ALL_MODELS]["method"]) == ("big", "gptq-w3g128")


def test_a_16_gb_gpu_takes_the_best_scoring_method_shown_non_inferior(study):
    # FP8 (-0.1) beats GPTQ 8-bit (-0.2) where FP8 runs; on an A100-class GPU it cannot
    a = _answer(study, Hardware(16, 1, (9, 0)))
    assert a["small"]["method"] == "fp8" and a["small"]["status"] == "shown non-inferior"
    assert a["small"]["score_points"] == pytest.approx(59.9)
    assert a["small"]["baseline_score_points"] == pytest.approx(60.0)
    assert "none: needs 17 GB" in a["small"]["excluded"]
    assert a["small"]["deploy"] == "resources/models/small/none (quantized while loading: fp8)"
    assert a["big"]["method"] is None
    assert a["big"]["status"] == "nothing runs here: the smallest needs 30 GB"
    a = _answer(study, Hardware(16, 1, (8, 0)))
    assert a["small"]["method"] == "gptq-w8g128"
    assert a["small"]["deploy"] == "resources/models/small/gptq-w8g128"
    assert a["small"]["verdicts"] == "4 non-inferior"


def test_more_memory_buys_the_better_scoring_version(study):
    a = _answer(study, hardware_by_name("h100"))  # 77 GB usable: 8-bit and FP8 do not fit
    assert a["big"]["method"] == "gptq-w4g128" and a["big"]["score_points"] == pytest.approx(69.7)
    a = _answer(study, hardware_by_name("2xa100_80g"))
    assert a["big"]["method"] == "none" and a["big"]["gpus"] == 2
    assert a[ALL_MODELS]["model"] == "big" and a[ALL_MODELS]["score_points"] == pytest.approx(70)


def test_when_nothing_shown_non_inferior_fits_the_best_that_fits_is_named_plainly(study):
    a = _answer(study, Hardware(36, 1, (9, 0)))  # 34.8 GB usable: only AWQ of the big model
    big = a["big"]
    assert big["method"] == "awq-w4g128"
    assert big["status"].startswith("NOT shown non-inferior")
    assert big["verdicts"] == "4 inferior"
    # over all models, a version shown non-inferior (the small model's) comes before it
    assert a[ALL_MODELS]["model"] == "small" and a[ALL_MODELS]["method"] == "none"


def test_a_cpu_rules_out_the_kinds_that_need_cuda(study):
    a = _answer(study, Hardware(None, ram_gb=64))
    assert a["big"]["method"] == "gptq-w4g128" and a["big"]["gpus"] == 0
    assert "awq-w4g128: needs a CUDA GPU" in a["big"]["excluded"]
    assert "fp8: needs a CUDA GPU" in a["small"]["excluded"]
    assert a["small"]["method"] == "none"


def test_the_recommend_cli_answers_for_the_gpu_it_is_given(tmp_path, capsys):
    files = []
    for i, c in enumerate(_comparisons()):
        files.append(str(tmp_path / f"c{i}.json"))
        write_json(files[-1], c)
    mem = tmp_path / "memory.csv"
    _memory().to_csv(mem, index=False)
    out, ev, dep = (tmp_path / n for n in ("rec.csv", "ev.csv", "dep.csv"))
    args = ["recommend", "--memory", str(mem), "--out", str(out), "--evidence-out", str(ev)]
    argv = [*args, "--margin", "1", "--gpu-gb", "40", "--compute-capability", "8.0"]
    png = tmp_path / "deployment.png"
    assert main([*argv, "--deployment-figure", str(png), "--deployment-out", str(dep), *files]) == 0
    rows = {r["scope"]: r for r in csv.DictReader(dep.open())}
    assert rows["small"]["method"] == "none" and rows["small"]["gpus"] == "1"
    assert rows["big"]["method"] == "gptq-w3g128" and rows["big"]["memory_gb"] == "38.0"
    assert rows[ALL_MODELS]["hardware"] == "1 x 40 GB GPU (compute 8.0)"
    printed = capsys.readouterr().out
    assert "1 x 40 GB GPU (compute 8.0):" in printed
    assert "all models: big x gptq-w3g128, score 69.4 (16-bit 70.0), 38 GB estimated" in printed
    assert png.stat().st_size > 5_000
    # bad hardware is named
    assert main([*args, "--hardware", "a100", *files]) != 0
    assert "want a device" in capsys.readouterr().err
    assert main([*args, "--gpu-gb", "40", "--cpu", *files]) != 0
    assert main([*args, "--compute-capability", "eight", "--gpu-gb", "40", *files]) != 0
    assert "MAJOR.MINOR" in capsys.readouterr().err


def test_one_fit_rule_for_tables_jobs_and_answers():
    usable_40 = 0.9 * 40 * 1024**3 / 1e9
    assert gpus_needed(usable_40, 40) == 1 and gpus_needed(usable_40 + 0.01, 40) == 2
    assert smallest_gpu(usable_40) == 40 and smallest_gpu(usable_40 + 0.01) == 48
    assert fit_text(152, 80) == "2 x" and fit_text(17, 24) == "yes" and fit_text(1e4, 80) == "no"
    assert Hardware(80, 2).gpus_used(152) == 2 and Hardware(80, 1).gpus_used(152) is None
    assert why_not_runnable("gguf", Hardware(None)) == ""
    assert why_not_runnable("fp8", Hardware(48, 1, None)) == ""  # capability not given
    with pytest.raises(ValueError, match="GPUs must be one of"):
        Hardware(80, 3)


def test_the_schema_names_exactly_the_registry_s_devices():
    import re

    import yaml

    from biomedquant.planning.throughput import DEVICES

    from conftest import REPO

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    deploy_on = schema["properties"]["recommendation"]["properties"]["deploy_on"]
    pattern = deploy_on["items"]["pattern"]
    names = re.search(r"\(([a-z0-9_|]+)\)", pattern)[1].split("|")
    assert set(names) == set(DEVICES)
    for name in deploy_on["default"]:
        assert re.match(pattern, name) and hardware_by_name(name)
