# biomedquant: accuracy lost and GPU memory saved by quantizing LLMs for biomedical NLP.
# Thin on purpose: all logic lives in the biomedquant package; rules are one CLI call each.
from snakemake.utils import min_version

from biomedquant.common.conda_env import set_project_root
from biomedquant.study import planning_speedups
from biomedquant.study.workflow import (
    check_config,
    check_default_config_file,
    check_run,
)

min_version("9.0")


# The demo config is the default; a config given with --configfile replaces it whole (Snakemake
# would otherwise merge the two, and the demo model would join every study).
if not workflow.config_settings.configfiles:
    # read strictly first: Snakemake's own reading expands every YAML alias
    check_default_config_file()

    configfile: "config/config.yaml"


# Planning a full study in seconds (biomedquant.study.planning_speedups; restored for the run).
SPEEDUPS = planning_speedups.enable()
# Every config problem at once, before any job is planned (biomedquant.study.workflow).
check_config(workflow, config)
# The rules' conda environment installs this project from this folder
# (biomedquant.common.conda_env).
set_project_root(workflow.basedir)


onstart:
    planning_speedups.restore(SPEEDUPS)
    check_run(workflow, config)


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/models.smk"
include: "workflow/rules/quantization.smk"
include: "workflow/rules/inference.smk"
include: "workflow/rules/evaluation.smk"
include: "workflow/rules/planning.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/exports.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        STUDY.final_targets(),
        PLAN_TARGETS,
        DEPLOYMENT_TARGETS,


# Last, once every rule exists: small CPU rules run beside Snakemake, not as cluster jobs.
workflow.localrules(*local_rules())
