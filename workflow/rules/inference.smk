# Inference: one job per (model, method, dataset, prompting method), on the GPU when present.
# It writes the raw outputs only (results/generations); reading the answers is the evaluate
# step's (scoring.smk), so a parser fix reruns no inference. Its run record holds the timings
# and peak host and GPU memory; a Snakemake `benchmark:` file would repeat them, at a cost in
# planning time for every one of thousands of jobs.


rule infer:
    input:
        model=model_dir,
        data=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
        pool=fewshot_pool,
    output:
        generations=GENERATIONS,
        run=RUN_RECORD,
    log:
        "logs/infer/{model}/{method}/{dataset}/{prompt}.log",
    conda:
        CONDA_ENV
    resources:
        **gpu_resources("infer"),
        generation_cache=GENERATION_CACHE,
    params:
        # everything that changes the outputs, as one JSON object (see infer_settings)
        settings=infer_settings,
    shell:
        "biomedquant infer --settings {params.settings:q} --model-dir {input.model:q}"
        " --dataset {wildcards.dataset} --data {input.data:q} --prompt {wildcards.prompt}"
        " --pool={input.pool:q} --out {output.generations:q} --run-record {output.run:q}"
        " --cache-dir={resources.generation_cache:q} --cpu-threads={resources.cpu_threads}"
        " > {log:q} 2>&1"


# Noise floor: the baseline once more at another batch shape (config noise_floor.batch_size).
# Padding changes the floating-point path, so some answers change with no quantization at all;
# quantized methods must change more than this to mean anything. The generation cache is off:
# its keys do not hold the batch shape, so it would return the baseline's own answers.
use rule infer as infer_noise_floor with:
    output:
        generations="results/noise_floor/generations/{model}/{method}/{dataset}/{prompt}.jsonl",
        run="results/noise_floor/predictions/{model}/{method}/{dataset}/{prompt}.run.json",
    log:
        "logs/infer_noise_floor/{model}/{method}/{dataset}/{prompt}.log",
    resources:
        **gpu_resources("infer"),
        generation_cache="",
    params:
        settings=noise_floor_infer_settings,
