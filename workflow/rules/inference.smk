# Inference: one job per (model, method), on the GPU when present. It loads the model once and
# runs every dataset and prompting method of the study on it (under vLLM, all of a dataset's
# requests at once), writing into one folder per model x method a generations file and a run
# record per dataset x prompting method, as evaluate reads them (biomedquant.inference). It
# writes raw outputs only (results/generations); reading the answers is the evaluate step's
# (evaluation.smk), so a parser fix reruns no inference. Its run records hold the timings, the
# one model load and peak host and GPU memory; a Snakemake `benchmark:` file would repeat them,
# at a cost in planning time for every job.
#
# A job whose runtime estimate exceeds scheduling.max_job_hours runs time-boxed
# (resources.smk, infer_split): it stops before its limit, saving every finished batch, and
# Snakemake resubmits it (`retries`) until it is done, each attempt resuming where the last
# stopped. Work that would need more than scheduling.max_attempts attempts is cut into item
# shards: `infer_shard` runs every shard but the last, each over the same slice of every
# dataset, writing a folder of parts; the `infer` job runs the last shard and joins the parts
# into the per-run files.


rule infer:
    input:
        model=model_dir,
        data=layout.STUDY_DATA,
        parts=shard_parts(layout.SHARD_PARTS),
    output:
        # one folder: a generations file and a run record per dataset x prompting method
        generations=stage_dir(layout.GENERATIONS_DIR),
    log:
        "logs/infer/{model}/{method}.log",
    retries: INFER_RETRIES
    conda:
        CONDA_ENV
    resources:
        **gpu_resources("infer"),
        generation_cache=STUDY.generation_cache,
        time_box=time_box,
    params:
        # what changes the outputs: the keys all runs share, and each dataset's files and
        # runs (see infer_settings and infer_datasets)
        settings=infer_settings,
        datasets=infer_datasets(layout.GENERATIONS, layout.RUN_RECORD),
        prompts=PROMPT_ARGS,
    shell:
        "biomedquant infer --settings {params.settings:q} --model-dir {input.model:q}"
        " {params.prompts} --datasets {params.datasets:q}"
        " --cache-dir={resources.generation_cache:q} --cpu-threads={resources.cpu_threads}"
        " --gpus={resources.gpu} --stop-after-minutes={resources.time_box} > {log:q} 2>&1"


# Every shard but the last of a sharded job: its slice of every dataset's items, for every
# prompting method, as parts (time-boxed and resumable like the infer job).
use rule infer as infer_shard with:
    input:
        model=model_dir,
        data=layout.STUDY_DATA,
        parts=[],
    output:
        parts=directory(layout.SHARD_PARTS),
    log:
        "logs/infer_shard/{model}/{method}/{shard}.log",
    params:
        settings=infer_settings,
        datasets=infer_datasets(),
        prompts=PROMPT_ARGS,


# Noise floor: the baseline once more at another batch shape (config noise_floor.batch_size).
# Padding changes the floating-point path, so some answers change with no quantization at all;
# quantized methods must change more than this to mean anything. The generation cache is off:
# its keys do not hold the batch shape, so it would return the baseline's own answers.
use rule infer as infer_noise_floor with:
    input:
        model=model_dir,
        data=layout.STUDY_DATA,
        parts=shard_parts(layout.NOISE_FLOOR_SHARD_PARTS),
    output:
        generations=stage_dir(layout.NOISE_FLOOR_GENERATIONS_DIR),
    log:
        "logs/infer_noise_floor/{model}/{method}.log",
    resources:
        **gpu_resources("infer"),
        generation_cache="",
        time_box=time_box,
    params:
        settings=noise_floor_infer_settings,
        datasets=infer_datasets(
            layout.NOISE_FLOOR_GENERATIONS, layout.NOISE_FLOOR_RUN_RECORD
        ),
        prompts=PROMPT_ARGS,


use rule infer_shard as infer_noise_floor_shard with:
    output:
        parts=directory(layout.NOISE_FLOOR_SHARD_PARTS),
    log:
        "logs/infer_noise_floor_shard/{model}/{method}/{shard}.log",
    resources:
        **gpu_resources("infer"),
        generation_cache="",
        time_box=time_box,
    params:
        settings=noise_floor_infer_settings,
        datasets=infer_datasets(),
        prompts=PROMPT_ARGS,


# Held-out perplexity per (model, method) on the study's test texts: a task-free quality check
# (biomedquant.inference.perplexity).


rule perplexity:
    input:
        model=model_dir,
        data=layout.STUDY_DATA,
    output:
        "results/perplexity/{model}/{method}.json",
    log:
        "logs/perplexity/{model}/{method}.log",
    conda:
        CONDA_ENV
    resources:
        **gpu_resources("perplexity"),
    params:
        method=lambda wildcards: as_json(method_spec(wildcards)),
        texts=STUDY.gold_files(),
    shell:
        "biomedquant perplexity --model-dir {input.model:q} --method {params.method:q}"
        " --out {output:q} --cpu-threads={resources.cpu_threads} --gpus={resources.gpu}"
        " {params.texts:q} > {log:q} 2>&1"


rule perplexity_table:
    input:
        expand(
            "results/perplexity/{model}/{method}.json",
            model=config["models"],
            method=config["methods"],
        ),
    output:
        "results/tables/perplexity.csv",
    log:
        "logs/perplexity_table.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant perplexity-table --out {output:q} {input:q} > {log:q} 2>&1"
