# The study's figures and the pages of `snakemake --report` (biomedquant.report; captions in
# workflow/report/). Snakemake fixes a report caption when it defines a rule (a caption cannot
# follow a wildcard), so the registry's figures (biomedquant.report.figures.registry) are defined
# in a loop, one rule each, named figure_<name>, each one `biomedquant plot` call on the tidy
# tables.
import shlex

from biomedquant.report.figures.registry import FIGURES, TABLES, figure_paths
from biomedquant.report.pages import TABLE_PAGES, page_category


report: "../report/workflow.rst"


for _figure, _spec in FIGURES.items():
    if _spec.rule is not None:
        continue  # drawn by the rule that writes its table (planning.smk, analysis.smk)
    _other = figure_paths(_figure)[1:]  # the PNG goes to the report

    rule:
        name:
            f"figure_{_figure}"
        input:
            **{table: TABLES[table] for table in _spec.inputs},
        output:
            report_figure(_figure),
            *_other,
        log:
            f"logs/figures/{_figure}.log",
        conda:
            CONDA_ENV
        params:
            # Values, not loop variables in the shell string: Snakemake evaluates that string
            # when the job runs, after the loop has moved on.
            figure=_figure,
            tables=" ".join(
                f"--{table.replace('_', '-')} {shlex.quote(TABLES[table])}"
                for table in _spec.inputs
            ),
            order=STUDY.figure_order,
        shell:
            "biomedquant plot {params.figure} {params.tables} --order {params.order:q}"
            " --out {output:q} > {log:q} 2>&1"


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
        order=STUDY.figure_order,
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
