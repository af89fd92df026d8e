"""The README's "Expected compute" table: `biomedquant plan --cost` for the paper's original
study and for the whole `config/paper.yaml`, under vLLM and transformers, on one GPU type.

    python benchmarks/expected_compute.py [--gpu h100]

Prints a Markdown table of expected GPU-hours (no safety margin), what the first attempts of
the jobs request, and how many inference jobs are cut into shards. A planning figure from the
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
    zero_shot = copy.deepcopy(original)
    zero_shot["prompts"] = ["zero-shot"]
    return {
        "original six methods, zero-shot": zero_shot,
        "original six methods, all five prompting methods": original,
        "config/paper.yaml (11 methods, 5 prompting methods)": paper,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", default="h100")
    args = parser.parse_args()
    print(
        f"| study | backend | expected GPU-hours ({args.gpu}) | requested"
        " | model x method jobs sharded |"
    )
    print("|---|---|---:|---:|---:|")
    for name, config in studies().items():
        for backend in ("vllm", "transformers"):
            cost = study_cost(config, backend=backend, device=args.gpu)
            sharded = sum(j.shards > 1 for j in cost.jobs)
            print(
                f"| {name} | {backend} | {cost.total():,.0f} |"
                f" {cost.total(requested=True):,.0f} | {sharded} |"
            )


if __name__ == "__main__":
    main()
