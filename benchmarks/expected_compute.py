"""The README's "Expected compute" table: `biomedquant plan --cost` for the paper's original
study and for the whole `config/paper.yaml`, under vLLM and transformers, on one GPU type.

    python benchmarks/expected_compute.py [--gpu h100]

Prints a Markdown table of expected GPU-hours of inference and evaluation (no safety margin),
what the planned attempts of those jobs request, quantization's expected GPU-hours apart, and
how many inference jobs are cut into shards. vLLM rows: each method under the engine that runs
it as specified (biomedquant.methods.engines.engine_for). A planning figure from the
runtime model (src/biomedquant/planning/throughput.py), not a measurement.
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from biomedquant.planning.cost import study_cost
from biomedquant.study.loading import load_config

REPO = Path(__file__).resolve().parent.parent
# The paper's methods: 16-bit, GPTQ 8/4/3-bit, bitsandbytes int8 and NF4.
STUDY_METHODS = ("none", "gptq-w8g128", "gptq-w4g128", "gptq-w3g128", "bnb-int8", "bnb-nf4")


def studies() -> dict[str, dict]:
    paper = load_config(REPO / "config" / "paper.yaml")
    original = copy.deepcopy(paper)
    original["methods"] = {m: s for m, s in paper["methods"].items() if m in STUDY_METHODS}
    zero_shot = load_config(REPO / "config" / "paper_original.yaml")
    assert set(zero_shot["methods"]) == set(STUDY_METHODS)
    return {
        "original six methods, zero-shot (config/paper_original.yaml)": zero_shot,
        "original six methods, all five prompting methods": original,
        "config/paper.yaml (11 methods, 5 prompting methods)": paper,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="h100")
    args = parser.parse_args()
    print(
        f"| study | backend | inference and evaluation, expected GPU-hours ({args.gpu}) |"
        " requested | quantization, expected | model x method jobs sharded |"
    )
    print("|---|---|---:|---:|---:|---:|")
    for name, config in studies().items():
        for backend in ("vllm", "transformers"):
            cost = study_cost(config, backend=backend, device=args.gpu)
            sharded = sum(j.shards > 1 for j in cost.jobs)
            run = cost.total("infer") + cost.total("perplexity")
            asked = cost.total("infer", requested=True) + cost.total("perplexity", requested=True)
            print(
                f"| {name} | {backend} | {run:,.0f} | {asked:,.0f} |"
                f" {cost.total('quantize_model'):,.0f} | {sharded} |"
            )


if __name__ == "__main__":
    main()
