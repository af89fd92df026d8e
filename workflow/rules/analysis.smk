# The study's tables turned into answers (biomedquant.analysis): the memory the runs measured,
# what a lab without a GPU can serve, and which method to deploy.
import shlex


rule memory_table:
    input:
        # the run records, through the evaluate jobs' manifests (a hundred inputs, not thousands)
        STUDY.evaluation_manifests(),
    output:
        "results/tables/memory.csv",
    log:
        "logs/memory_table.log",
    conda:
        CONDA_ENV
    params:
        study=as_json(STUDY.study_shape()),
    shell:
        "biomedquant memory-table --config-json {params.study:q} --out {output:q}"
        " --manifests {input:q}"
        " > {log:q} 2>&1"


# What a lab without a GPU can serve: speed and memory of every method run on a CPU, beside its
# accuracy change against the 16-bit baseline.

DEPLOYMENT_TARGETS = [
    "results/tables/cpu_deployment.csv",
    figure_paths("cpu_deployment")[0],
]


rule cpu_deployment_table:
    input:
        manifests=STUDY.evaluation_manifests(),
        comparisons=["results/tables/comparisons.csv"] if STUDY.compared else [],
        perplexity="results/tables/perplexity.csv",
    output:
        table="results/tables/cpu_deployment.csv",
        png=report_figure("cpu_deployment"),
        pdf=figure_paths("cpu_deployment")[1],
    log:
        "logs/cpu_deployment_table.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant cpu-deployment --out {output.table:q}"
        " --comparisons={input.comparisons:q} --perplexity={input.perplexity:q}"
        " --figure {output.png:q} {output.pdf:q} --manifests {input.manifests:q}"
        " > {log:q} 2>&1"


rule recommend:
    input:
        # the comparison files (listed by the evaluate jobs' manifests) carry the resampled
        # differences the verdicts pool over datasets
        manifests=STUDY.evaluation_manifests(),
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
        # the prompting methods the claim is for, the controls and each candidate's control
        scope=STUDY.recommendation_scope_args(),
        hardware=" ".join(
            f"--hardware {shlex.quote(h)}"
            for h in config["recommendation"]["deploy_on"]
        ),
        order=STUDY.figure_order,
    shell:
        "biomedquant recommend --memory {input.memory:q} {params.margin}"
        " {params.task_margins} --alpha {params.alpha} {params.scope} --out {output.table:q}"
        " --evidence-out {output.evidence:q} {params.hardware}"
        " --deployment-out {output.deployment:q} --deployment-figure {output.png:q}"
        " {output.pdf:q} --order {params.order:q} --manifests {input.manifests:q}"
        " > {log:q} 2>&1"
