# Models: fetch once as a 16-bit safetensors folder, then quantize (cached artifacts).


rule fetch_model:
    output:
        directory("resources/models/{model}/none"),
    log:
        "logs/fetch_model/{model}.log",
    conda:
        CONDA_ENV
    resources:
        mem_mb=8000,
    params:
        spec=lambda wildcards: as_json(config["models"][wildcards.model]),
    shell:
        "biomedquant fetch-model --model {wildcards.model} --spec {params.spec:q}"
        " --out {output:q} > {log:q} 2>&1"


rule quantize_model:
    input:
        "resources/models/{model}/none",
    output:
        directory("resources/models/{model}/{method}"),
    log:
        "logs/quantize_model/{model}/{method}.log",
    wildcard_constraints:
        method="(?!none$)[a-z0-9][a-z0-9_.-]*",
    cache: True
    conda:
        CONDA_ENV
    resources:
        gpu=1,
        mem_mb=16000,
        cpu_threads=CPU_THREADS,
    params:
        method=lambda wildcards: as_json(method_spec(wildcards)),
        seed=config["seed"],
    shell:
        "biomedquant quantize --source {input:q} --method {params.method:q}"
        " --out {output:q} --seed {params.seed} --cpu-threads={resources.cpu_threads}"
        " > {log:q} 2>&1"
