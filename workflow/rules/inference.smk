# Inference: one job per (model, method, dataset), on the GPU when present. It loads the model
# once and runs every prompting method of the study on it (under vLLM, all their requests at
# once), writing one generations file and run record per prompting method, as evaluate reads
# them. It writes raw outputs only (results/generations); reading the answers is the evaluate
# step's (scoring.smk), so a parser fix reruns no inference. Its run records hold the timings,
# the one model load and peak host and GPU memory; a Snakemake `benchmark:` file would repeat
# them, at a cost in planning time for every job.
#
# A job whose runtime estimate exceeds scheduling.max_job_hours is cut into item shards
# (resources.smk, inference_shard_count): `infer_shard` runs every shard but the last, each
# writing a folder of parts; the `infer` job runs the last shard and joins the parts into the
# per-run files.


rule infer:
    input:
        model=model_dir,
        data=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
        pool=fewshot_pool,
        parts=shard_parts(SHARD_PARTS),
    output:
        generations=per_prompt(GENERATIONS),
        runs=per_prompt(RUN_RECORD),
    log:
        "logs/infer/{model}/{method}/{dataset}.log",
    conda:
        CONDA_ENV
    resources:
        **gpu_resources("infer"),
        generation_cache=GENERATION_CACHE,
    params:
        # everything that changes the outputs, as one JSON object (see infer_settings)
        settings=infer_settings,
        prompts=PROMPT_ARGS,
        shard=last_shard,
        parts=part_folders,
        outputs=output_folders,
    shell:
        "biomedquant infer --settings {params.settings:q} --model-dir {input.model:q}"
        " --dataset {wildcards.dataset} --data {input.data:q} {params.prompts}"
        " --pool={input.pool:q} {params.outputs} --shard {params.shard} --parts {params.parts}"
        " --cache-dir={resources.generation_cache:q} --cpu-threads={resources.cpu_threads}"
        " --gpus={resources.gpu} > {log:q} 2>&1"


# Every shard but the last of a sharded job: its slice of items, for every prompting method,
# as parts (resumable like any job: a shard killed at its time limit resumes on retry).
use rule infer as infer_shard with:
    input:
        model=model_dir,
        data=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
        pool=fewshot_pool,
        parts=[],
    output:
        parts=directory(SHARD_PARTS),
    log:
        "logs/infer_shard/{model}/{method}/{dataset}/{shard}.log",
    params:
        settings=infer_settings,
        prompts=PROMPT_ARGS,
        shard=shard_wildcard,
        parts="",
        outputs=part_output_folders,


# Noise floor: the baseline once more at another batch shape (config noise_floor.batch_size).
# Padding changes the floating-point path, so some answers change with no quantization at all;
# quantized methods must change more than this to mean anything. The generation cache is off:
# its keys do not hold the batch shape, so it would return the baseline's own answers.
use rule infer as infer_noise_floor with:
    input:
        model=model_dir,
        data=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
        pool=fewshot_pool,
        parts=shard_parts(NOISE_FLOOR_SHARD_PARTS),
    output:
        generations=per_prompt(NOISE_FLOOR_GENERATIONS),
        runs=per_prompt(NOISE_FLOOR_RUN_RECORD),
    log:
        "logs/infer_noise_floor/{model}/{method}/{dataset}.log",
    resources:
        **gpu_resources("infer"),
        generation_cache="",
    params:
        settings=noise_floor_infer_settings,
        prompts=PROMPT_ARGS,
        shard=last_shard,
        parts=part_folders,
        outputs=output_folders,


use rule infer_shard as infer_noise_floor_shard with:
    output:
        parts=directory(NOISE_FLOOR_SHARD_PARTS),
    log:
        "logs/infer_noise_floor_shard/{model}/{method}/{dataset}/{shard}.log",
    resources:
        **gpu_resources("infer"),
        generation_cache="",
    params:
        settings=noise_floor_infer_settings,
        prompts=PROMPT_ARGS,
        shard=shard_wildcard,
        parts="",
        outputs=part_output_folders,
