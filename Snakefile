# biomedquant: accuracy lost and GPU memory saved by quantizing LLMs for biomedical NLP.
# Thin on purpose: all logic lives in the biomedquant package; rules are one CLI call each.
from snakemake.utils import min_version, validate

from biomedquant.common.conda_env import set_project_root
from biomedquant.study.config_checks import (
    SchedulerSettingError,
    check_scheduler_settings,
    check_strict_revisions,
)
from biomedquant.study.loading import (
    check_against_schema,
    check_config_files,
    config_errors_as_messages,
)
from biomedquant.study.planning_speedups import (
    defer_full_collections,
    restore_thresholds,
    skip_collections_at_exit,
)
from biomedquant.study.checks import (
    StudyError,
    check_run_hardware,
    check_study,
    parse_hardware,
)

min_version("9.0")

# The rules' conda environment installs this project from here (biomedquant.common.conda_env).
set_project_root(workflow.basedir)

# Planning a full study builds hundreds of thousands of objects that live until the end;
# Python's full garbage collections would walk them again and again, and once more at exit
# (biomedquant.study.planning_speedups). They wait while the study is planned (onstart restores
# them for the run itself), and the walk at exit is skipped.
GC_THRESHOLDS = defer_full_collections()
skip_collections_at_exit()


# The demo config is the default; a config given with --configfile replaces it whole (Snakemake
# would otherwise merge the two, and the demo model would join every study).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# Config problems end the run with their message only (no stack frames).
with config_errors_as_messages(StudyError, SchedulerSettingError):
    # Snakemake's YAML reading keeps the last of two equal keys; re-read the files strictly.
    CONFIG_FILES = workflow.config_settings.configfiles or ["config/config.yaml"]
    check_config_files(CONFIG_FILES)
    # one line naming the key (and the nearest valid one), then Snakemake fills the defaults
    check_against_schema(config, ", ".join(map(str, CONFIG_FILES)))
    validate(config, "workflow/schemas/config.schema.yaml")
    # What the schema cannot see (calibration against the sources and the models' widest
    # layers, a baseline, local model folders, GPTQ group sizes, what fits the GPUs a job may
    # use): every problem at once, before any job; `biomedquant plan` and `biomedquant
    # doctor` say the same.
    check_study(config, hardware=parse_hardware(workflow))
    # A profile resource naming an unset environment variable (the SLURM profile's partition
    # and account) is refused now, rather than handed to sbatch literally with every job.
    check_scheduler_settings(
        getattr(workflow.resource_settings.default_resources, "args", None),
        workflow.resource_settings.overwrite_resources,
    )


onstart:
    restore_thresholds(GC_THRESHOLDS)
    # fp8 against this machine's GPU (or, on a cluster, a node constraint): real runs only.
    check_run_hardware(config, workflow)
    # Only real runs: a dry run plans an unpinned study without downloading anything.
    if config["strict_revisions"]:
        check_strict_revisions(config)


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
        final_targets(),
        PLAN_TARGETS,
        DEPLOYMENT_TARGETS,


# Last, once every rule exists: small CPU rules run beside Snakemake, not as cluster jobs.
workflow.localrules(*local_rules())
