"""A model's export job (biomedquant.exports.model): its method list is checked, and a failure
leaves the previous exports whole; its lm-eval results (biomedquant.exports.lm_eval) mark the
primary metric and say which metrics reward unparsable answers."""

from __future__ import annotations

import json

import pytest

from biomedquant.exports.model import MethodExport, export_model


def test_a_method_entry_names_what_it_lacks():
    entry = MethodExport.from_json({"name": "none", "spec": {"kind": "none"}, "manifest": "m"})
    assert entry.artifact is None
    with pytest.raises(ValueError, match="needs name, spec and manifest"):
        MethodExport.from_json({"name": "none", "spec": {}})
    with pytest.raises(ValueError, match="needs name, spec and manifest"):
        MethodExport.from_json({"name": "x", "spec": {}, "manifest": "m", "artefact": "a"})


def test_a_failed_export_leaves_the_previous_folder_as_it_was(tmp_path):
    out = tmp_path / "exports" / "tiny"
    (out / "none" / "lm_eval").mkdir(parents=True)
    (out / "none" / "lm_eval" / "results_old.json").write_text("{}")
    methods = [MethodExport("none", {"kind": "none"}, str(tmp_path / "missing.json"))]
    with pytest.raises(FileNotFoundError):
        export_model("tiny", {"source": "hf", "id": "x/y"}, methods, out)
    assert (out / "none" / "lm_eval" / "results_old.json").read_text() == "{}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no temporary left


def test_a_method_listed_twice_is_refused(tmp_path):
    m = MethodExport("none", {"kind": "none"}, "m.json")
    with pytest.raises(ValueError, match="listed twice"):
        export_model("tiny", {}, [m, m], tmp_path / "out")


def _export_two_tasks(tmp_path):
    """An lm-eval export of one NER and one QA run, written from real gold, prediction and
    score files (one unparsable answer each), read back."""
    from biomedquant.exports.lm_eval import export_lm_eval
    from biomedquant.tasks.metrics import benchmark_metrics

    runs = []
    tiny = {
        "bc5cdr_chem": (
            "f1",
            [
                {"id": "s1", "tokens": ["Cisplatin", "hurts", "."], "tags": ["B", "O", "O"]},
                {"id": "s2", "tokens": ["Rats", "died", "."], "tags": ["O", "O", "O"]},
            ],
            [["B", "O", "O"], ["O", "O", "O"]],
        ),
        "pubmedqa": (
            "accuracy",
            [{"id": "q1", "answer": "yes"}, {"id": "q2", "answer": "no"}],
            ["yes", "no"],
        ),
    }
    for dataset, (primary, gold, pred) in tiny.items():
        folder = tmp_path / dataset
        folder.mkdir()
        ok = [True, False]
        (folder / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in gold))
        (folder / "predictions.jsonl").write_text(
            "".join(
                json.dumps({"id": r["id"], "prediction": p, "parse_ok": o, "output": "x"}) + "\n"
                for r, p, o in zip(gold, pred, ok, strict=True)
            )
        )
        task = "ner" if dataset == "bc5cdr_chem" else "qa"
        gold_labels = [r["tags"] if task == "ner" else r["answer"] for r in gold]
        metrics = {primary: {"value": 0.5, "ci_low": 0.1, "ci_high": 0.9}}
        for name, value in benchmark_metrics(task, gold_labels, pred, ok).items():
            metrics[name] = {"value": value, "ci_low": None, "ci_high": None}
        scores = {
            "metrics": metrics,
            "primary_metric": primary,
            "n": 2,
            "parse_failure_rate": 0.5,
            "written_at": "2026-01-01T00:00:00+00:00",
        }
        (folder / "scores.json").write_text(json.dumps(scores))
        runs.append(
            {
                "dataset": dataset,
                "prompt": "zero-shot",
                "gold": str(folder / "test.jsonl"),
                "predictions": str(folder / "predictions.jsonl"),
                "scores": str(folder / "scores.json"),
            }
        )
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"runs": runs}))
    files = export_lm_eval(
        manifest, "tiny", {"id": "x/y"}, "none", {"kind": "none"}, tmp_path / "o"
    )
    (results,) = [p for p in files if p.name.startswith("results_")]
    return json.loads(results.read_text())


def test_the_lm_eval_export_marks_the_primary_metric(tmp_path):
    doc = _export_two_tasks(tmp_path)
    for task, primary in (("bc5cdr_chem_zero_shot", "f1"), ("pubmedqa_zero_shot", "accuracy")):
        meta = doc["configs"][task]["metadata"]
        assert meta["primary_metric"] == primary
        assert meta["primary_metric_key"] in doc["results"][task]
        roles = {m: v["role"] for m, v in meta["metrics"].items()}
        assert [m for m, r in roles.items() if r == "primary"] == [primary]
        # every metric of the results is described, none twice
        listed = {k.split(",")[0] for k in doc["results"][task] if "," in k}
        assert set(roles) == {
            m for m in listed if not m.endswith(("_stderr", "_ci_low", "_ci_high"))
        }


def test_the_lm_eval_export_says_the_benchmark_metrics_reward_unparsable_answers(tmp_path):
    doc = _export_two_tasks(tmp_path)
    ner = doc["configs"]["bc5cdr_chem_zero_shot"]["metadata"]["metrics"]
    for name in ("benchmark_precision", "benchmark_recall", "benchmark_f1"):
        assert ner[name]["role"] == "benchmark" and ner[name]["rewards_unparsable"]
        assert "rewards unparsable answers" in ner[name]["note"]
        assert "run_eval_ner.py" in ner[name]["note"]
    assert not ner["f1"]["rewards_unparsable"]
    qa = doc["configs"]["pubmedqa_zero_shot"]["metadata"]["metrics"]
    assert qa["benchmark_macro_f1"]["rewards_unparsable"]
    # the empty answer is simply wrong for accuracy: no reward there, and the note says so
    assert not qa["benchmark_accuracy"]["rewards_unparsable"]
    assert "one wrong answer" in qa["benchmark_accuracy"]["note"]
    assert qa["parse_failure_rate"]["role"] == "diagnostic"
    assert doc["higher_is_better"]["pubmedqa_zero_shot"]["parse_failure_rate"] is False
