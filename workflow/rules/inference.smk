# Inference: one job per (model, method, dataset, prompting method), on the GPU when present.


rule infer:
    input:
        model=model_dir,
        data=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
        pool=fewshot_pool,
    output:
        predictions="results/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        run="results/predictions/{model}/{method}/{dataset}/{prompt}.run.json",
    log:
        "logs/infer/{model}/{method}/{dataset}/{prompt}.log",
    benchmark:
        "results/benchmarks/infer/{model}/{method}/{dataset}/{prompt}.tsv"
    conda:
        CONDA_ENV
    resources:
        **gpu_tier_resources("infer"),
        gpu=1,
        mem_mb=gpu_job_resource("infer", "mem_mb"),
        gpu_mem_mb=gpu_job_resource("infer", "gpu_mem_mb"),
        runtime=gpu_job_resource("infer", "runtime"),
        cpu_threads=CPU_THREADS,
        generation_cache=GENERATION_CACHE,
    params:
        method=lambda wildcards: as_json(method_spec(wildcards)),
        batch_size=config["inference"]["batch_size"],
        batch_tokens=config["inference"]["batch_tokens"],
        backend=config["inference"]["backend"],
        max_new_tokens=max_new_tokens,
        system_prompt=config["prompting"].get("system_prompt", ""),
        sc_samples=sc_samples,
        sc_temperature=sc_temperature,
        seed=config["seed"],
    shell:
        "biomedquant infer --model-dir {input.model:q} --method {params.method:q}"
        " --dataset {wildcards.dataset} --data {input.data:q} --prompt {wildcards.prompt}"
        " --pool={input.pool:q} --sc-samples {params.sc_samples}"
        " --sc-temperature {params.sc_temperature}"
        " --out {output.predictions:q} --run-record {output.run:q}"
        " --batch-size {params.batch_size} --batch-tokens {params.batch_tokens}"
        " --backend {params.backend} --cache-dir={resources.generation_cache:q} --seed {params.seed}"
        " --max-new-tokens={params.max_new_tokens} --system-prompt={params.system_prompt:q}"
        " --cpu-threads={resources.cpu_threads} > {log:q} 2>&1"


# Noise floor: the baseline once more at another batch shape (config noise_floor.batch_size).
# Padding changes the floating-point path, so some answers change with no quantization at all;
# quantized methods must change more than this to mean anything. The generation cache is off:
# its keys do not hold the batch shape, so it would return the baseline's own answers.
use rule infer as infer_noise_floor with:
    output:
        predictions="results/noise_floor/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        run="results/noise_floor/predictions/{model}/{method}/{dataset}/{prompt}.run.json",
    log:
        "logs/infer_noise_floor/{model}/{method}/{dataset}/{prompt}.log",
    benchmark:
        "results/benchmarks/infer_noise_floor/{model}/{method}/{dataset}/{prompt}.tsv"
    resources:
        **gpu_tier_resources("infer"),
        gpu=1,
        mem_mb=gpu_job_resource("infer", "mem_mb"),
        gpu_mem_mb=gpu_job_resource("infer", "gpu_mem_mb"),
        runtime=gpu_job_resource("infer", "runtime"),
        cpu_threads=CPU_THREADS,
        generation_cache="",
    params:
        batch_size=config["noise_floor"].get("batch_size", 0),
