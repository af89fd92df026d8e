# A model's exports in one job (biomedquant.exports.model): per method its lm-evaluation-harness
# folder and, for a quantized artifact, its model card. Each file takes milliseconds; one job
# per model x method and file would cost the planner of a full study more than they do.
rule export_model:
    input:
        manifests=lambda wildcards: expand(
            layout.MANIFEST, model=wildcards.model, method=config["methods"]
        ),
        artifacts=lambda wildcards: STUDY.model_artifacts(wildcards.model).values(),
        scores="results/tables/scores.csv",
        # without a baseline to compare with, cards without verdicts ([]: an empty argument)
        evidence=(
            ["results/tables/recommendation_evidence.csv"] if STUDY.compared else []
        ),
    output:
        directory("results/exports/{model}"),
    log:
        "logs/export_model/{model}.log",
    conda:
        CONDA_ENV
    params:
        model_spec=lambda wildcards: as_json(config["models"][wildcards.model]),
        methods=export_methods,
    shell:
        "biomedquant export --model {wildcards.model:q} --model-spec {params.model_spec:q}"
        " --methods {params.methods:q} --scores {input.scores:q}"
        " --evidence={input.evidence:q} --out {output:q} > {log:q} 2>&1"
