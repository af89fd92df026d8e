# The fit estimator over the study, before any weights are fetched (biomedquant.planning).

PLAN_TARGETS = [
    "results/tables/fit.csv",
    figure_paths("fit")[0],
    "results/tables/memory.csv",
    "results/tables/perplexity.csv",
]


rule plan:
    output:
        table="results/tables/fit.csv",
        png=report_figure("fit"),
        pdf=figure_paths("fit")[1],
    log:
        "logs/plan.log",
    conda:
        CONDA_ENV
    params:
        study=as_json(STUDY.study_shape()),
    shell:
        "biomedquant plan --config-json {params.study:q} --out {output.table:q}"
        " --figure {output.png:q} {output.pdf:q} > {log:q} 2>&1"
