# Quantization (biomedquant.quantization): every method's artifact made once from the fetched
# 16-bit folder (cached), each checked layer by layer against round-to-nearest on held-out text.


rule quantize_model:
    input:
        source=layout.MODEL_DIR.format(model="{model}", method="none"),
        pools=lambda wildcards: list(calibration_pools(wildcards).values()),
        tests=lambda wildcards: list(calibration_test_files(wildcards).values()),
        # held-out text of the quality check: the evaluated test items (never calibration text)
        heldout=STUDY.gold_files(),
    output:
        directory(layout.MODEL_DIR),
    log:
        "logs/quantize_model/{model}/{method}.log",
    wildcard_constraints:
        method="(?!none$)[a-z0-9][a-z0-9_.-]*",
    cache: True
    conda:
        CONDA_ENV
    resources:
        **gpu_resources("quantize_model"),
    params:
        method=lambda wildcards: as_json(method_spec(wildcards)),
        pools=lambda wildcards: pairs_arg(calibration_pools(wildcards)),
        tests=lambda wildcards: pairs_arg(calibration_test_files(wildcards)),
        seed=config["seed"],
    shell:
        "biomedquant quantize --source {input.source:q} --method {params.method:q}"
        " --pools={params.pools:q} --test-files={params.tests:q}"
        " --out {output:q} --seed {params.seed} --cpu-threads={resources.cpu_threads}"
        " --gpus={resources.gpu} {input.heldout:q} > {log:q} 2>&1"


rule quantization_quality_table:
    input:
        STUDY.quantized_artifacts(),
    output:
        report(
            "results/tables/quantization_quality.csv",
            caption="../report/quantization_quality.rst",
            category="Quantization",
        ),
    log:
        "logs/quantization_quality_table.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant quality-table --out {output:q} {input:q} > {log:q} 2>&1"
