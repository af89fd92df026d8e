# The recommendation and the pages of `snakemake --report` (biomedquant.recommendation and
# biomedquant.report; captions in workflow/report/).
import shlex

from biomedquant.report import TABLE_PAGES, page_category


report: "../report/workflow.rst"


rule recommend:
    input:
        # the comparison files (listed by the evaluate jobs' manifests) carry the resampled
        # differences the verdicts pool over datasets
        manifests=evaluation_manifests(),
        memory="results/tables/memory.csv",
    output:
        table="results/tables/recommendation.csv",
        evidence="results/tables/recommendation_evidence.csv",
        deployment="results/tables/deployment_choice.csv",
        png=report_figure("deployment_choice"),
        pdf=figure_paths("deployment_choice")[1],
    log:
        "logs/recommend.log",
    conda:
        CONDA_ENV
    params:
        margin=(
            ""
            if config["recommendation"]["margin_points"] is None
            else f"--margin {config['recommendation']['margin_points']}"
        ),
        task_margins=" ".join(
            f"--task-margin {task}={points}"
            for task, points in config["recommendation"]["task_margin_points"].items()
        ),
        alpha=config["recommendation"]["alpha"],
        hardware=" ".join(
            f"--hardware {shlex.quote(h)}"
            for h in config["recommendation"]["deploy_on"]
        ),
        order=FIGURE_ORDER,
    shell:
        "biomedquant recommend --memory {input.memory:q} {params.margin}"
        " {params.task_margins} --alpha {params.alpha} --out {output.table:q}"
        " --evidence-out {output.evidence:q} {params.hardware}"
        " --deployment-out {output.deployment:q} --deployment-figure {output.png:q}"
        " {output.pdf:q} --order {params.order:q} --manifests {input.manifests:q}"
        " > {log:q} 2>&1"


# A model's exports in one job (biomedquant.exports): per method its lm-evaluation-harness
# folder and, for a quantized artifact, its model card. Each file takes milliseconds; one job
# per model x method and file would cost the planner of a full study more than they do.
rule export_model:
    input:
        manifests=lambda wildcards: expand(
            MANIFEST, model=wildcards.model, method=config["methods"]
        ),
        artifacts=lambda wildcards: model_artifacts(wildcards.model).values(),
        scores="results/tables/scores.csv",
        # without a baseline to compare with, cards without verdicts ([]: an empty argument)
        evidence=["results/tables/recommendation_evidence.csv"] if COMPARED else [],
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


rule report_table:
    input:
        table="results/tables/{table}.csv",
        # the recommendation's page also shows its evidence ([]: no file, an empty argument)
        evidence=lambda wildcards: (
            "results/tables/recommendation_evidence.csv"
            if wildcards.table == "recommendation"
            else []
        ),
    output:
        report(
            "results/report/{table}.html",
            caption="../report/tables.rst",
            category=lambda wildcards: page_category(wildcards.table),
        ),
    log:
        "logs/report_table/{table}.log",
    wildcard_constraints:
        table="|".join(TABLE_PAGES),
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant report-table --kind {wildcards.table} --table {input.table:q}"
        " --evidence={input.evidence:q} --order {params.order:q} --out {output:q}"
        " > {log:q} 2>&1"


rule report_configuration:
    output:
        report(
            "results/report/configuration.html",
            caption="../report/configuration.rst",
            category="Run configuration",
        ),
    log:
        "logs/report_configuration.log",
    conda:
        CONDA_ENV
    params:
        # The validated config with its defaults, less cpu_threads (speed only: changing it
        # must rerun nothing): the page is rewritten whenever a result-changing key changes.
        config=as_json({k: v for k, v in config.items() if k != "cpu_threads"}),
    shell:
        "biomedquant report-config --config-json {params.config:q} --out {output:q}"
        " > {log:q} 2>&1"
