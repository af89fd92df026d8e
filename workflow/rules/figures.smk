# The study's figures: one rule per figure of the registry (biomedquant.figures.registry), each
# one `biomedquant plot` call on the tidy tables, with its caption from workflow/report/.
# Snakemake fixes a report caption when it defines a rule (a caption cannot follow a wildcard),
# so the registry's figures are defined in a loop, one rule each, named figure_<name>.
import shlex

from biomedquant.figures.registry import FIGURES, TABLES, figure_paths
from biomedquant.figures.style import order_from_config, order_to_json

# Display order of the config (a method keeps its colour and place in every figure).
FIGURE_ORDER = order_to_json(order_from_config(config))


for _figure, _spec in FIGURES.items():
    if _spec.rule is not None:
        continue  # drawn by the rule that writes its table (plan.smk, deployment.smk)
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
            order=FIGURE_ORDER,
        shell:
            "biomedquant plot {params.figure} {params.tables} --order {params.order:q}"
            " --out {output:q} > {log:q} 2>&1"
