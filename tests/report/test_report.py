"""`snakemake --report` after a tiny study, rendered in headless Chromium.

The report is a React app: the figures live as data URIs in an embedded JSON block, and the
landing page (workflow/report/workflow.rst) lists every result and embeds the recommendation
figure. Chromium runs the app; the test reads the DOM it rendered and a screenshot.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from support.chromium import CHROMIUM, run_chromium
from support.study import TINY_DATASETS, TINY_PROMPTS, tiny_study

from biomedquant.datasets.registry import get_dataset
from biomedquant.report.figures.registry import FIGURES


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_source) -> Path:
    return tiny_study(tmp_path_factory, tiny_source)


@pytest.fixture(scope="module")
def report(study) -> Path:
    out = study / "results" / "report.html"
    if not out.exists():
        proc = subprocess.run(
            [sys.executable, "-m", "snakemake", "--report", str(out)],
            cwd=study,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_the_study_writes_every_figure_and_the_recommendation(study):
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (study / f"results/figures/{name}.{ext}").stat().st_size > 5_000, name
    rec = list(csv.DictReader((study / "results/tables/recommendation.csv").open()))
    assert [r["model"] for r in rec] == ["tiny"]
    assert rec[0]["recommended"] in ("none", "gptq-w4g32")
    assert rec[0]["margin_points"] == "mlc 1; ner 1; qa 1; re 1" and rec[0]["verdict"]
    assert rec[0]["procedure"].startswith("Holm over 1 candidate: gptq-w4g32: p 1,")
    # 4 items per dataset: too few to tell, so no quantized method is non-inferior
    assert rec[0]["recommended"] == "none"
    evidence = list(csv.DictReader((study / "results/tables/recommendation_evidence.csv").open()))
    # one verdict per task and prompting method of the quantized method
    tasks = {get_dataset(d).task for d in TINY_DATASETS}
    assert len(evidence) == len(tasks) * len(TINY_PROMPTS) == 4
    assert {e["verdict"] for e in evidence} == {"insufficient evidence"}
    # the deployment answer, per hardware of recommendation.deploy_on (the schema's default):
    # the tiny model in 16-bit fits everywhere, and nothing quantized is shown non-inferior
    deploy = list(csv.DictReader((study / "results/tables/deployment_choice.csv").open()))
    hardware = {d["hardware"] for d in deploy}
    assert len(hardware) == 7 and "CPU" in hardware and "2 x NVIDIA A100 SXM 80GB" in hardware
    assert {(d["scope"], d["method"], d["status"]) for d in deploy} == {
        ("tiny", "none", "the baseline itself"),
        ("all models", "none", "the baseline itself"),
    }
    assert {d["deploy"] for d in deploy} == {"resources/models/tiny/none"}
    # the quantized artifact's model card: hub metadata, then the study's scores and verdicts
    exports = study / "results/exports/tiny"  # one export job for the model, all its methods
    # (Snakemake marks a folder output with its .snakemake_timestamp)
    assert sorted(p.name for p in exports.iterdir() if p.name[0] != ".") == ["gptq-w4g32", "none"]
    assert not (exports / "none/README.md").exists()  # no artifact of its own, no card
    card = (exports / "gptq-w4g32/README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert header["base_model_relation"] == "quantized" and "gptq" in header["tags"]
    assert "## Scores" in card and "insufficient evidence" in card


def test_lm_eval_reads_the_exported_results_and_samples(study):
    """Every model x method's export, read back with lm-evaluation-harness's own code: its
    file-name conventions, its table printer, and its result schema's keys."""
    from lm_eval.result_schema import EvalResults, SampleResult
    from lm_eval.utils import (
        get_file_task_name,
        get_latest_filename,
        get_results_filenames,
        get_sample_results_filenames,
        make_table,
    )

    for method in ("none", "gptq-w4g32"):
        folder = study / "results/exports/tiny" / method / "lm_eval"
        files = [str(p) for p in sorted(folder.iterdir())]
        results = json.loads(Path(get_latest_filename(get_results_filenames(files))).read_text())
        tasks = {f"{d}_{p.replace('-', '_')}" for d in TINY_DATASETS for p in TINY_PROMPTS}
        assert set(results["results"]) == tasks
        assert set(results) - {"biomedquant_version"} <= set(EvalResults.__annotations__)
        table = make_table(results)
        scores = list(csv.DictReader((study / "results/tables/scores.csv").open()))
        for row in scores:
            if row["method"] == method and row["primary"] == "True":
                task = f"{row['dataset']}_{row['prompt'].replace('-', '_')}"
                assert results["results"][task][f"{row['metric']},none"] == float(row["value"])
                assert row["metric"] in table
        samples = get_sample_results_filenames(files)
        assert {get_file_task_name(Path(f).name) for f in samples} == tasks
        for path in samples:
            lines = [json.loads(line) for line in Path(path).read_text().splitlines()]
            task = get_file_task_name(Path(path).name)
            assert len(lines) == results["n-samples"][task]["effective"]
            for line in lines:
                assert SampleResult.__required_keys__ <= set(line)
                assert isinstance(line["resps"][0][0], str) and line["exact_match"] in (0.0, 1.0)


def test_table_pages_show_the_methods_display_names_beside_their_slugs(study):
    page = (study / "results/report/scores.html").read_text()
    assert "GPTQ 4-bit, g32 (gptq-w4g32)" in page and "16-bit (none)" in page
    # the CSV keeps the slugs alone
    assert "GPTQ" not in (study / "results/tables/scores.csv").read_text()


def test_report_holds_figures_captions_tables_and_configuration(report):
    text = report.read_text(encoding="utf-8")
    for name in FIGURES:
        assert f"{name}.png" in text, name
    pages = ("scores", "comparisons", "memory", "recommendation", "deployment_choice")
    for page in pages:
        assert f"{page}.html" in text, page
    assert "configuration.html" in text
    # captions are rendered into the results' metadata
    assert "frontier" in text and "flip rate" in text.lower()
    assert text.count("data:image/png;") >= len(FIGURES)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    from matplotlib.image import imread

    url = report.resolve().as_uri()
    shot = tmp_path / "report.png"
    proc = run_chromium(
        [f"--screenshot={shot}", "--window-size=1400,1000", url], tmp_path / "profile-shot"
    )
    assert shot.exists(), proc.stderr[-3000:]
    img = imread(shot)[..., :3]
    assert img.shape[:2] == (1000, 1400)
    # not blank: a fair share of the page is drawn, in more than one colour
    assert (img.mean(axis=2) < 0.9).mean() > 0.05
    assert img.reshape(-1, 3).std(axis=0).max() > 0.1

    dom = run_chromium(["--dump-dom", url], tmp_path / "profile-dom")
    html = dom.stdout
    assert dom.returncode == 0 and "<body" in html, dom.stderr[-3000:]
    # what the React app rendered into <div id="app"> (the scripts after it hold the raw data)
    rendered = html.split('<div id="app">', 1)[1].split("<script", 1)[0]
    assert len(rendered) > 1000, rendered
    # the landing page lists every figure and shows the recommendation figure (inline SVG)
    for name in FIGURES:
        assert f"{name}.png" in rendered, name
    assert "<svg" in rendered and "Recommendation" in rendered
    # it opens with the summary figure, then the recommendation, both inline
    assert rendered.count("<svg") >= 2
    assert -1 < rendered.index("The main result") < rendered.index("The recommendation (open")
