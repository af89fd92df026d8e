"""The evaluate step: raw outputs of every prompting method read, scored and compared in one
job, with the same per-prompt files separate steps would write."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from biomedquant.cli import main
from biomedquant.common.files import read_json, read_jsonl, write_jsonl
from biomedquant.evaluation.job import (
    evaluate_group,
    evaluation_code_fingerprint,
    manifest_files,
    parse_generations,
    table_inputs,
)

PROMPTS = ["zero-shot", "five-shot"]


def _generations(gold: list[dict], path, wrong_every: int) -> None:
    """Raw PubMedQA outputs: the gold decision worded as a model would, every n-th one
    answered wrongly, one of them in a form that states two answers (unparsable)."""
    rows = []
    for i, g in enumerate(gold):
        answer = g["answer"] if i % wrong_every else ("no" if g["answer"] == "yes" else "yes")
        text = f"Answer: {answer.capitalize()}. The abstract supports this."
        if i == 1:
            text = "Answer: yes or no, the study cannot tell."
        rows.append({"id": g["id"], "prompt_sha256": "0" * 64, "output": text})
    write_jsonl(path, rows)


def _settings(tmp_path, gold_path, method: str, baseline: bool) -> dict:
    def path(kind: str, prompt: str, ext: str, of: str = method) -> str:
        return str(tmp_path / kind / of / f"{prompt}.{ext}")

    runs = []
    for prompt in PROMPTS:
        run = {
            "dataset": "pubmedqa",
            "prompt": prompt,
            "gold": str(gold_path),
            "generations": path("generations", prompt, "jsonl"),
            "predictions": path("predictions", prompt, "jsonl"),
            "scores": path("scores", prompt, "json"),
        }
        if not baseline:
            run["baseline_predictions"] = path("predictions", prompt, "jsonl", of="none")
            run["comparisons"] = path("comparisons", prompt, "json")
        runs.append(run)
    settings = {"model": "m", "method": method, "runs": runs, "resamples": 50, "level": 0.9}
    if not baseline:
        settings["baseline"] = "none"
    return settings


def _run(settings: dict, prompt: str) -> dict:
    return next(r for r in settings["runs"] if r["prompt"] == prompt)


def test_one_job_reads_scores_and_compares_every_prompting_method(demo_prepared, tmp_path):
    gold_path = demo_prepared["pubmedqa"]
    gold = read_jsonl(gold_path)
    base = _settings(tmp_path, gold_path, "none", baseline=True)
    quant = _settings(tmp_path, gold_path, "q4", baseline=False)
    for prompt in PROMPTS:
        (tmp_path / "generations" / "none").mkdir(parents=True, exist_ok=True)
        (tmp_path / "generations" / "q4").mkdir(parents=True, exist_ok=True)
        _generations(gold, _run(base, prompt)["generations"], wrong_every=100)
        _generations(gold, _run(quant, prompt)["generations"], wrong_every=3)
    assert main(["evaluate", "--settings", json.dumps(base)]) == 0
    summary = evaluate_group(quant)
    assert set(summary) == {f"pubmedqa/{p}" for p in PROMPTS}
    n = len(gold)
    for prompt in PROMPTS:
        run, base_run = _run(quant, prompt), _run(base, prompt)
        preds = read_jsonl(run["predictions"])
        assert [p["id"] for p in preds] == [g["id"] for g in gold]
        assert preds[1]["parse_status"] == "ambiguous" and not preds[1]["parse_ok"]
        assert {p["parse_rule"] for p in preds if p["parse_ok"]} == {"marker"}
        score = read_json(run["scores"])
        assert score["n"] == n and score["prompt"] == prompt and score["method"] == "q4"
        assert score["parse_failure_rate"] == pytest.approx(1 / n)
        # wrong on item 0 and every third item after it, except item 1 (unparsable anyway)
        wrong = len({i for i in range(n) if i % 3 == 0} | {1})
        assert score["metrics"]["accuracy"]["value"] == pytest.approx((n - wrong) / n)
        base_score = read_json(base_run["scores"])
        assert base_score["metrics"]["accuracy"]["value"] == pytest.approx((n - 2) / n)
        comp = read_json(run["comparisons"])
        assert comp["baseline"] == "none" and comp["method"] == "q4" and comp["n"] == n
        changed = sum(
            a["prediction"] != b["prediction"]
            for a, b in zip(read_jsonl(base_run["predictions"]), preds, strict=True)
        )
        assert comp["flip_rate"] == pytest.approx(changed / n)


def test_evaluation_refuses_outputs_of_other_items_and_incomplete_settings(demo_prepared, tmp_path):
    gold_path = demo_prepared["pubmedqa"]
    gold = read_jsonl(gold_path)
    gens = tmp_path / "g.jsonl"
    _generations(gold[:-1], gens, wrong_every=2)
    with pytest.raises(ValueError, match="does not hold the items"):
        parse_generations(gens, gold_path, "pubmedqa", "zero-shot", tmp_path / "p.jsonl")
    assert not (tmp_path / "p.jsonl").exists()
    settings = _settings(tmp_path, gold_path, "q4", baseline=False)
    del _run(settings, "five-shot")["comparisons"]
    with pytest.raises(ValueError, match="lacks comparisons"):
        evaluate_group(settings)


def test_code_fingerprint_changes_with_the_parsers_source(tmp_path, monkeypatch):
    import shutil
    import sys

    from biomedquant import tasks

    src = tmp_path / "src"
    shutil.copytree(tasks.__path__[0], src / "fakepkg")
    monkeypatch.syspath_prepend(str(src))
    before = evaluation_code_fingerprint(("fakepkg",))
    assert before == evaluation_code_fingerprint(("fakepkg",))
    qa = src / "fakepkg" / "qa.py"
    qa.write_text(qa.read_text() + "\n# changed\n")
    sys.modules.pop("fakepkg", None)
    assert evaluation_code_fingerprint(("fakepkg",)) != before
    assert len(evaluation_code_fingerprint()) == 64


def test_tables_read_through_manifests_equal_tables_of_the_listed_files(demo_prepared, tmp_path):
    """Each evaluate job ends with a manifest of what it wrote; the study-wide tables gathered
    through the manifests are the tables gathered from the per-run files, row for row."""
    gold_path = demo_prepared["pubmedqa"]
    gold = read_jsonl(gold_path)
    base = _settings(tmp_path, gold_path, "none", baseline=True)
    quant = _settings(tmp_path, gold_path, "q4", baseline=False)
    for settings, wrong_every in ((base, 100), (quant, 3)):
        settings["manifest"] = str(tmp_path / "evaluation" / f"{settings['method']}.json")
        (tmp_path / "generations" / settings["method"]).mkdir(parents=True)
        for prompt in PROMPTS:
            _generations(gold, _run(settings, prompt)["generations"], wrong_every)
        evaluate_group(settings)
    manifests = [base["manifest"], quant["manifest"]]
    listed = read_json(quant["manifest"])
    assert [(r["dataset"], r["prompt"]) for r in listed["runs"]] == [
        ("pubmedqa", p) for p in PROMPTS
    ]
    assert set(listed["summary"]) == {f"pubmedqa/{p}" for p in PROMPTS}
    scores = [r["scores"] for s in (base, quant) for r in s["runs"]]
    assert manifest_files(manifests, "scores") == scores
    assert table_inputs("comparisons", manifests) == [r["comparisons"] for r in quant["runs"]]
    for kind, files in (
        ("scores", scores),
        ("comparisons", table_inputs("comparisons", manifests)),
    ):
        direct, through = tmp_path / f"{kind}_files.csv", tmp_path / f"{kind}_manifests.csv"
        assert main(["aggregate", "--kind", kind, "--out", str(direct), *files]) == 0
        assert (
            main(["aggregate", "--kind", kind, "--out", str(through), "--manifests", *manifests])
            == 0
        )
        assert through.read_text() == direct.read_text() and len(through.read_text()) > 100
    # a rerun removes the old manifest first: a failed rerun leaves none behind
    del _run(quant, "five-shot")["comparisons"]
    with pytest.raises(ValueError, match="lacks comparisons"):
        evaluate_group(quant)
    assert not (tmp_path / "evaluation" / "q4.json").exists()
    with pytest.raises(ValueError, match="not one of"):
        table_inputs("memory", manifests)
    gone = tmp_path / "scores" / "none" / "five-shot.json"
    gone.unlink()
    with pytest.raises(ValueError, match="lists 1 missing file.*five-shot.json.*rerun"):
        manifest_files([base["manifest"]], "scores")
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.raises(ValueError, match="not an evaluation manifest"):
        manifest_files([bad], "scores")
    bad.write_text('{"runs": ["a"]}')  # once an internal error
    with pytest.raises(ValueError, match="bad.json: not an evaluation manifest"):
        manifest_files([bad], "scores")
    bad.write_text('{"runs": [{"scores": 3}]}')
    with pytest.raises(ValueError, match="bad.json: an entry under 'scores' is not a file path"):
        manifest_files([bad], "scores")


def test_the_fingerprint_covers_the_import_closure_of_the_evaluate_step():
    from biomedquant.evaluation.job import package_import_closure

    covered = package_import_closure("biomedquant.evaluation.job")
    # what the evaluate step runs, the voting and the cluster patterns included
    for module in (
        "biomedquant.evaluation.scoring",
        "biomedquant.evaluation.parsing",
        "biomedquant.tasks.answer_reading",
        "biomedquant.inference.prompting",
        "biomedquant.datasets.registry",
        "biomedquant.evaluation.stats.sufficient",
    ):
        assert module in covered, module
    # and nothing the evaluate step never runs (an engine change re-evaluates nothing)
    assert not any(
        m.startswith(("biomedquant.inference.engines", "biomedquant.quantization")) for m in covered
    )


def test_the_closure_follows_every_kind_of_import(tmp_path, monkeypatch):
    from biomedquant.evaluation.job import package_import_closure

    pkg = tmp_path / "closurepkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "root.py").write_text("def f():\n    from closurepkg import helper\n")
    (pkg / "helper.py").write_text("import closurepkg.sub.deep\nimport json\n")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "deep.py").write_text(
        '"""Docstring: import the answers (not an import)."""\n'
        "from . import sibling\nfrom ..leaf import (\n    x,\n)\n"
    )
    (pkg / "sub" / "sibling.py").write_text("")
    (pkg / "leaf.py").write_text("x = 1\n")
    (pkg / "unused.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert package_import_closure("closurepkg.root", "closurepkg") == (
        "closurepkg",
        "closurepkg.helper",
        "closurepkg.leaf",
        "closurepkg.root",
        "closurepkg.sub",
        "closurepkg.sub.deep",
        "closurepkg.sub.sibling",
    )


def test_the_closure_read_from_import_lines_equals_a_full_parse_of_every_module(monkeypatch):
    """Only import lines are parsed (for the planner's start-up); for every module of the
    package the closure equals the one found when each module's whole syntax tree is walked."""
    import ast
    import pkgutil

    import biomedquant
    import biomedquant.evaluation.job as evaluation

    modules = [m.name for m in pkgutil.walk_packages(biomedquant.__path__, "biomedquant.")]
    assert len(modules) > 50
    from_lines = {m: evaluation.package_import_closure(m) for m in modules}

    def every_import(text: str) -> list[ast.Import | ast.ImportFrom]:
        return [n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.Import | ast.ImportFrom)]

    monkeypatch.setattr(evaluation, "_import_nodes", every_import)
    for module in modules:
        assert from_lines[module] == evaluation.package_import_closure(module), module


def test_the_job_in_memory_writes_what_the_per_file_commands_write(demo_prepared, tmp_path):
    """Parse, score and compare hand records in memory inside the job; the files it writes
    equal those of `parse`, `score` and `compare` run one after another on files (the noise
    floor's too), but for the time written."""
    gold_path = demo_prepared["pubmedqa"]
    gold = read_jsonl(gold_path)
    base = _settings(tmp_path, gold_path, "none", baseline=True)
    quant = _settings(tmp_path, gold_path, "q4", baseline=False)
    base["noise_floor_label"] = "none (rerun)"
    for settings, wrong_every in ((base, 100), (quant, 3)):
        settings["comparison_resamples"] = 2000
        (tmp_path / "generations" / settings["method"]).mkdir(parents=True)
        for prompt in PROMPTS:
            run = _run(settings, prompt)
            _generations(gold, run["generations"], wrong_every)
            if settings is base:
                run["noise_floor_generations"] = str(tmp_path / f"floor-{prompt}.jsonl")
                run["noise_floor_predictions"] = str(tmp_path / f"floor-{prompt}.p.jsonl")
                run["noise_floor_comparisons"] = str(tmp_path / f"floor-{prompt}.c.json")
                _generations(gold, run["noise_floor_generations"], wrong_every=7)
        evaluate_group(settings)

    def same_json(a: str, b: Path) -> None:
        left, right = read_json(a), read_json(b)
        left.pop("written_at"), right.pop("written_at")
        assert left == right, a

    def cli(command: str, out: Path, *args: str) -> Path:
        assert main([command, *args, "--out", str(out)]) == 0
        return out

    by_hand = tmp_path / "by_hand"
    data = ["--gold", str(gold_path), "--dataset", "pubmedqa"]
    for prompt in PROMPTS:
        b, q = _run(base, prompt), _run(quant, prompt)
        names = [*data, "--model", "m", "--prompt", prompt, "--seed", "0", "--level", "0.9"]
        compared = [*names, "--resamples", "2000", "--baseline", "none"]
        for method, run in (("none", b), ("q4", q)):
            gens = ["--generations", run["generations"], *data, "--prompt", prompt]
            parsed = cli("parse", by_hand / f"{method}-{prompt}.jsonl", *gens)
            assert parsed.read_bytes() == Path(run["predictions"]).read_bytes()
            scored = ["--predictions", str(parsed), *names, "--method", method, "--resamples", "50"]
            same_json(run["scores"], cli("score", by_hand / f"{method}-{prompt}.json", *scored))
        pair = ["--baseline-predictions", b["predictions"], "--predictions", q["predictions"]]
        out = cli("compare", by_hand / f"q4-{prompt}.c.json", *pair, *compared, "--method", "q4")
        same_json(q["comparisons"], out)
        gens = ["--generations", b["noise_floor_generations"], *data, "--prompt", prompt]
        floor = cli("parse", by_hand / f"floor-{prompt}.jsonl", *gens)
        assert floor.read_bytes() == Path(b["noise_floor_predictions"]).read_bytes()
        pair = ["--baseline-predictions", b["predictions"], "--predictions", str(floor)]
        floor_args = [*pair, *compared, "--method", "none (rerun)", "--noise-floor"]
        out = cli("compare", by_hand / f"floor-{prompt}.c.json", *floor_args)
        same_json(b["noise_floor_comparisons"], out)
