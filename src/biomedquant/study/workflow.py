"""The Snakefile's two checkpoints: the config checked as a whole before any rule is planned,
and what a real run checks when its jobs are about to start.

Both take Snakemake's ``workflow`` object only to read what the command line said (config files,
``--resources``, the profile's default resources); the checks themselves are the package's
and are tested without Snakemake.
"""

from __future__ import annotations

from typing import Any

from biomedquant.common.files import ProvenanceMismatchError
from biomedquant.datasets.prepare import check_prepared_splits
from biomedquant.study.checks import StudyError, check_run_hardware, check_study, parse_hardware
from biomedquant.study.config_checks import (
    SchedulerSettingError,
    check_scheduler_settings,
    check_strict_revisions,
)
from biomedquant.study.loading import (
    apply_schema,
    check_config_files,
    config_errors_as_messages,
)

# The demo config, which the Snakefile reads when no --configfile is given.
DEFAULT_CONFIG = "config/config.yaml"


def check_default_config_file() -> None:
    """Read the default config strictly before Snakemake's ``configfile:`` does: Snakemake
    merges a config into its own by walking every nested mapping, which a YAML alias bomb
    turns into hours and gigabytes before any check of ours would run. (A file given with
    ``--configfile`` is read by Snakemake's command line before the Snakefile starts, out of
    our reach: ``biomedquant plan --config`` checks such a file first.)"""
    with config_errors_as_messages():
        check_config_files([DEFAULT_CONFIG])


def check_config(workflow: Any, config: dict[str, Any]) -> None:
    """Every config problem at once, before any job: a bad config ends the run with its
    messages only (no stack frames). The schema's defaults are filled into ``config``."""
    with config_errors_as_messages(StudyError, SchedulerSettingError):
        # Snakemake's YAML reading keeps the last of two equal keys; re-read the files strictly.
        files = workflow.config_settings.configfiles or [DEFAULT_CONFIG]
        check_config_files(files)
        # one line naming the key (and the nearest valid one); the schema's defaults filled in
        apply_schema(config, ", ".join(map(str, files)))
        # What the schema cannot see (calibration against the sources and the models' widest
        # layers, a baseline, local model folders, GPTQ group sizes, what fits the GPUs a job
        # may use); `biomedquant plan` and `biomedquant doctor` say the same.
        check_study(config, hardware=parse_hardware(workflow))
        # A profile resource naming an unset environment variable (the SLURM profile's
        # partition and account) is refused now, rather than handed to sbatch with every job.
        check_scheduler_settings(
            getattr(workflow.resource_settings.default_resources, "args", None),
            workflow.resource_settings.overwrite_resources,
        )


def check_run(workflow: Any, config: dict[str, Any]) -> None:
    """Checks of a real run only (a dry run plans an unpinned study without downloading
    anything): fp8 against this machine's GPU (or, on a cluster, a node constraint), pinned
    model revisions when the config asks for them, and every prepared split already on disk
    against its provenance."""
    check_run_hardware(config, workflow)
    if config["strict_revisions"]:
        check_strict_revisions(config)
    # a prepared split changed since it was written: refused before any job deletes outputs
    with config_errors_as_messages(ProvenanceMismatchError):
        check_prepared_splits()
