"""The rules' conda environment (``envs/biomedquant.yaml``) and where it finds the project.

Snakemake creates a rule's environment from a copy of its env file under its conda prefix
(``.snakemake/conda/`` by default, anywhere with ``--conda-prefix``), so a path relative to the
env file would lead there rather than to the project. The file installs the project from
``${BIOMEDQUANT_ROOT}`` instead, which pip expands, and the Snakefile sets that variable to the
workflow's folder before any environment is created (Snakemake creates them in its own
process, which the variable then reaches).
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT_VARIABLE = "BIOMEDQUANT_ROOT"


def set_project_root(folder: str | Path) -> None:
    """Point the env file's project line at ``folder`` (the workflow's own folder)."""
    os.environ[PROJECT_ROOT_VARIABLE] = str(folder)
