# Held-out perplexity per (model, method) on the study's test texts: a task-free quality check.


rule perplexity:
    input:
        model=model_dir,
        data=STUDY_DATA,
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
        texts=gold_files(),
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
