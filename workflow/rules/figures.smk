# Figures, the recommendation, and the pages of `snakemake --report` (captions in
# workflow/report/). Every figure is one `biomedquant plot` call on the tidy tables.


report: "../report/workflow.rst"


# Display order of the config (a method keeps its colour and place in every figure).
FIGURE_ORDER = as_json(
    {
        "models": list(config["models"]),
        "methods": list(config["methods"]),
        "prompts": config["prompts"],
        "baseline": BASELINE,
    }
)
TABLE_CATEGORY = {"recommendation": "Recommendation"}


rule figure_scores_by_dataset:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "results/figures/scores_by_dataset.png",
            caption="../report/scores_by_dataset.rst",
            category="Accuracy",
        ),
        pdf="results/figures/scores_by_dataset.pdf",
    log:
        "logs/figures/scores_by_dataset.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot scores_by_dataset --scores {input.scores:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_prompting:
    input:
        scores="results/tables/scores.csv",
    output:
        png=report(
            "results/figures/prompting.png",
            caption="../report/prompting.rst",
            category="Accuracy",
        ),
        pdf="results/figures/prompting.pdf",
    log:
        "logs/figures/prompting.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot prompting --scores {input.scores:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_change_heatmap:
    input:
        comparisons="results/tables/comparisons.csv",
    output:
        png=report(
            "results/figures/change_heatmap.png",
            caption="../report/change_heatmap.rst",
            category="Accuracy",
        ),
        pdf="results/figures/change_heatmap.pdf",
    log:
        "logs/figures/change_heatmap.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot change_heatmap --comparisons {input.comparisons:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_flip_rate:
    input:
        comparisons="results/tables/comparisons.csv",
    output:
        png=report(
            "results/figures/flip_rate.png",
            caption="../report/flip_rate.rst",
            category="Accuracy",
        ),
        pdf="results/figures/flip_rate.pdf",
    log:
        "logs/figures/flip_rate.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot flip_rate --comparisons {input.comparisons:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_change_by_label:
    input:
        by_label="results/tables/comparisons_by_label.csv",
    output:
        png=report(
            "results/figures/change_by_label.png",
            caption="../report/change_by_label.rst",
            category="Accuracy",
        ),
        pdf="results/figures/change_by_label.pdf",
    log:
        "logs/figures/change_by_label.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot change_by_label --comparisons-by-label {input.by_label:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_memory:
    input:
        memory="results/tables/memory.csv",
    output:
        png=report(
            "results/figures/memory.png",
            caption="../report/memory.rst",
            category="Memory",
        ),
        pdf="results/figures/memory.pdf",
    log:
        "logs/figures/memory.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot memory --memory {input.memory:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_memory_vs_score:
    input:
        scores="results/tables/scores.csv",
        memory="results/tables/memory.csv",
    output:
        png=report(
            "results/figures/memory_vs_score.png",
            caption="../report/memory_vs_score.rst",
            category="Memory",
        ),
        pdf="results/figures/memory_vs_score.pdf",
    log:
        "logs/figures/memory_vs_score.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot memory_vs_score --scores {input.scores:q}"
        " --memory {input.memory:q} --order {params.order:q}"
        " --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule figure_memory_estimate_check:
    input:
        memory="results/tables/memory.csv",
    output:
        png=report(
            "results/figures/memory_estimate_check.png",
            caption="../report/memory_estimate_check.rst",
            category="Memory",
        ),
        pdf="results/figures/memory_estimate_check.pdf",
    log:
        "logs/figures/memory_estimate_check.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot memory_estimate_check --memory {input.memory:q}"
        " --order {params.order:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule recommend:
    input:
        # the comparison files carry the resampled differences the verdicts pool over datasets
        comparisons=comparison_files(),
        memory="results/tables/memory.csv",
    output:
        table="results/tables/recommendation.csv",
        evidence="results/tables/recommendation_evidence.csv",
    log:
        "logs/recommend.log",
    conda:
        CONDA_ENV
    params:
        margin=config["recommendation"]["margin_points"],
        task_margins=" ".join(
            f"--task-margin {task}={points}"
            for task, points in config["recommendation"]["task_margin_points"].items()
        ),
        alpha=config["recommendation"]["alpha"],
    shell:
        "biomedquant recommend --memory {input.memory:q} --margin {params.margin}"
        " {params.task_margins} --alpha {params.alpha} --out {output.table:q}"
        " --evidence-out {output.evidence:q} {input.comparisons:q} > {log:q} 2>&1"


rule figure_recommendation:
    input:
        recommendation="results/tables/recommendation.csv",
        evidence="results/tables/recommendation_evidence.csv",
    output:
        png=report(
            "results/figures/recommendation.png",
            caption="../report/recommendation.rst",
            category="Recommendation",
        ),
        pdf="results/figures/recommendation.pdf",
        # inlined into the report's landing page (an <img> there could not be self-contained)
        svg="results/figures/recommendation.svg",
    log:
        "logs/figures/recommendation.log",
    conda:
        CONDA_ENV
    params:
        order=FIGURE_ORDER,
    shell:
        "biomedquant plot recommendation --recommendation {input.recommendation:q}"
        " --evidence {input.evidence:q} --order {params.order:q}"
        " --out {output.png:q} {output.pdf:q} {output.svg:q} > {log:q} 2>&1"


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
            category=lambda wildcards: TABLE_CATEGORY.get(wildcards.table, "Tables"),
        ),
    log:
        "logs/report_table/{table}.log",
    wildcard_constraints:
        table="scores|comparisons|memory|recommendation",
    conda:
        CONDA_ENV
    shell:
        "biomedquant report-table --kind {wildcards.table} --table {input.table:q}"
        " --evidence={input.evidence:q} --out {output:q} > {log:q} 2>&1"


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
