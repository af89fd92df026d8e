# Models (biomedquant.models): fetched once as a 16-bit safetensors folder.


rule fetch_model:
    output:
        directory(layout.MODEL_DIR.format(model="{model}", method="none")),
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
