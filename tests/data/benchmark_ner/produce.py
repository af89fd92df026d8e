"""Run the benchmark's own NER evaluation on this folder's prediction files and record its output.

BIDS-Xu-Lab/Biomedical-NLP-Benchmarks scores NER in two steps: the notebook
``GPT/extractive_tasks/ner_format_conversion/json2txt.ipynb`` turns each prediction file (a JSON
list of ``{"sentence", "gold", "pred"}`` with B/I/O tags) into per-sentence gold and predicted
span lists, and ``run_eval_ner.py`` sums them into precision, recall and F1. This script runs
both, unmodified but for the notebook's one IPython line (``!mkdir``, replaced by
``os.makedirs``), in a temporary folder outside the repository, and writes what they produced to
``spans/`` (the span lists) and ``expected.json`` (the numbers ``run_eval_ner.py`` printed).
The test (tests/tasks/test_benchmark_metrics.py) reads only those outputs, so it needs neither the
upstream repository nor this script.

    python tests/data/benchmark_ner/produce.py <git dir of Biomedical-NLP-Benchmarks>

The upstream files are read with ``git show`` at :data:`UPSTREAM_COMMIT` (a bare mirror or a
clone both work).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

UPSTREAM = "BIDS-Xu-Lab/Biomedical-NLP-Benchmarks"
UPSTREAM_COMMIT = "e607a812d87df151f310a9dd3677cfc21924f192"
NOTEBOOK = "GPT/extractive_tasks/ner_format_conversion/json2txt.ipynb"
EVAL = "run_eval_ner.py"
HERE = Path(__file__).resolve().parent
# the notebook's fixed loop: datasets x GPT versions x shots, read from data/<dataset>/GPT<v>/
RUNS = [
    (dataset, gpt, "5s") for dataset in ("NCBI_Disease", "BC5CDR_Chemical") for gpt in ("3.5", "4")
]


def upstream_file(git_dir: Path, path: str) -> str:
    """One upstream file's text at the pinned commit."""
    return subprocess.run(
        ["git", "-C", str(git_dir), "show", f"{UPSTREAM_COMMIT}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def notebook_script(notebook: str) -> str:
    """The notebook's code cells as one script; its ``!mkdir <dir>`` shell line (IPython only)
    becomes the equivalent ``os.makedirs``, so plain Python runs it."""
    cells = [
        "".join(c["source"]) for c in json.loads(notebook)["cells"] if c["cell_type"] == "code"
    ]
    script = "\n\n".join(cells)
    script, n = re.subn(
        r"^(\s*)!mkdir (\S+?)/?$", r"\1os.makedirs(f'\2', exist_ok=True)", script, flags=re.M
    )
    if n != 1:
        raise SystemExit(f"expected one !mkdir line in {NOTEBOOK}, found {n}")
    return script


def parse_scores(stdout: str) -> dict[str, float]:
    """``run_eval_ner.py``'s printed ``Precision:``, ``Recall:`` and ``F1 Score:``."""
    found = dict(re.findall(r"^(Precision|Recall|F1 Score): (\S+)$", stdout, flags=re.M))
    return {
        "precision": float(found["Precision"]),
        "recall": float(found["Recall"]),
        "f1": float(found["F1 Score"]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("upstream", type=Path, help=f"git directory of {UPSTREAM}")
    args = ap.parse_args()
    results: dict[str, dict[str, float]] = {}
    printed: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="benchmark-ner-") as tmp:
        work = Path(tmp)
        (work / EVAL).write_text(upstream_file(args.upstream, EVAL))
        (work / "json2txt.py").write_text(notebook_script(upstream_file(args.upstream, NOTEBOOK)))
        for dataset, gpt, shot in RUNS:
            name = f"{dataset}_gpt{gpt}_{shot}"
            target = work / "data" / dataset / f"GPT{gpt}"
            target.mkdir(parents=True)
            shutil.copy(HERE / "inputs" / f"{name}.json", target / f"{name}.json")
        subprocess.run([sys.executable, "json2txt.py"], cwd=work, check=True)
        spans = HERE / "spans"
        spans.mkdir(exist_ok=True)
        for dataset, gpt, shot in RUNS:
            name = f"{dataset}_gpt{gpt}_{shot}"
            gold, pred = f"output/{name}_gold_span.txt", f"output/{name}_pre_span.txt"
            out = subprocess.run(
                [sys.executable, EVAL, "--gold_file", gold, "--pred_file", pred],
                cwd=work,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            print(f"{name}:\n{out}", end="")
            results[name] = parse_scores(out)
            printed[name] = out.splitlines()
            shutil.copy(work / gold, spans / Path(gold).name)
            shutil.copy(work / pred, spans / Path(pred).name)
    expected = {
        "upstream": UPSTREAM,
        "upstream_commit": UPSTREAM_COMMIT,
        "produced_by": "python tests/data/benchmark_ner/produce.py <upstream git dir>",
        "python": sys.version.split()[0],
        "scores": results,
        "printed": printed,
    }
    (HERE / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")


if __name__ == "__main__":
    main()
