# The fit estimator over the study (no weights needed), and the memory the runs measured.

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
        study=as_json(study_shape()),
    shell:
        "biomedquant plan --config-json {params.study:q} --out {output.table:q}"
        " --figure {output.png:q} {output.pdf:q} > {log:q} 2>&1"


rule memory_table:
    input:
        # the run records, through the evaluate jobs' manifests (a hundred inputs, not thousands)
        evaluation_manifests(),
    output:
        "results/tables/memory.csv",
    log:
        "logs/memory_table.log",
    conda:
        CONDA_ENV
    params:
        study=as_json(study_shape()),
    shell:
        "biomedquant memory-table --config-json {params.study:q} --out {output:q}"
        " --manifests {input:q}"
        " > {log:q} 2>&1"
