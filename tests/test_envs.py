"""The rules' conda environment (`snakemake --sdm conda`), tested as far as this machine allows.

No conda and no conda channel are reachable here, so no environment is created. What can be
checked is checked with the real tools: the env files parse as conda environments, their pip
requirements resolve with pip in a fresh virtualenv, and real Snakemake, asked to create the
rules' environments, hands conda a copy of the env file from which the project's own line
resolves to this checkout. For that last step a stand-in ``conda`` command (written below)
answers Snakemake's version and configuration questions and, for ``conda env create``, does
only what conda does with an environment's pip section: writes it as a requirements file beside
the env file and runs pip there (here ``pip install --dry-run``). It is a stand-in because conda
cannot run here; everything it calls is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_workflow

ENV_FILES = [REPO / "environment.yml", *sorted((REPO / "envs").glob("*.yaml"))]


def _pip_section(path: Path) -> list[str]:
    env = yaml.safe_load(path.read_text())
    return next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_files_are_conda_environments(path):
    env = yaml.safe_load(path.read_text())
    assert set(env) >= {"channels", "dependencies"} and "nodefaults" in env["channels"]
    assert any(str(d).startswith("python=") for d in env["dependencies"])
    assert any(line.startswith("-e ") for line in _pip_section(path))


@pytest.mark.slow
def test_env_pip_requirements_resolve_in_a_fresh_virtualenv(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    reqs = tmp_path / "requirements.txt"
    pinned = [r for r in _pip_section(REPO / "envs" / "biomedquant.yaml") if not r.startswith("-e")]
    reqs.write_text("\n".join(pinned) + "\n")
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--dry-run", "-q",
         "--report", str(tmp_path / "report.json"), "-r", str(reqs)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    chosen = {i["metadata"]["name"].lower(): i["metadata"]["version"]
              for i in json.loads((tmp_path / "report.json").read_text())["install"]}  # fmt: skip
    for req in pinned:
        name, version = req.split("==")
        assert chosen[name.lower()].split("+")[0] == version, req  # torch: 2.13.0+cpu here


STAND_IN_CONDA = """\
#!{python}
# Stand-in for conda (none can run here): answers what Snakemake asks, and for `env create`
# does what conda does with the pip section only: requirements beside the env file, pip there.
import json, os, subprocess, sys, yaml
args = sys.argv[1:]
if args[:2] == ["info", "--json"]:
    print(json.dumps({{"conda_prefix": {prefix!r}, "platform": "linux-64"}}))
elif args == ["--version"]:
    print("conda 25.1.1")
elif args[:2] == ["config", "--get"]:
    print(json.dumps({{"get": {{"channel_priority": "strict"}}}}))
elif args[:2] == ["env", "create"]:
    env_file = args[args.index("--file") + 1].strip('"')
    prefix = args[args.index("--prefix") + 1].strip('"')
    env = yaml.safe_load(open(env_file))
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    folder = os.path.dirname(env_file)
    reqs = os.path.join(folder, "condaenv.requirements.txt")
    open(reqs, "w").write("\\n".join(line for line in pip if line.startswith("-e")) + "\\n")
    proc = subprocess.run([{python!r}, "-m", "pip", "install", "--dry-run", "--no-deps",
                           "--no-build-isolation", "-r", reqs], cwd=folder,
                          capture_output=True, text=True)
    with open({log!r}, "a") as log:
        log.write(json.dumps({{"env_file": env_file, "root": os.environ.get("BIOMEDQUANT_ROOT"),
                              "rc": proc.returncode, "out": proc.stdout + proc.stderr}}) + "\\n")
    os.makedirs(os.path.join(prefix, "bin"), exist_ok=True)
    sys.exit(proc.returncode)
else:
    sys.exit(0)
"""


def test_snakemake_creates_the_rules_env_from_a_copy_that_finds_the_project(tmp_path):
    wd = copy_workflow(tmp_path, yaml.safe_load((REPO / "config" / "config.yaml").read_text()))
    # the copy is a checkout of the project as far as pip sees it
    for name in ("pyproject.toml", "README.md"):
        (wd / name).write_text((REPO / name).read_text())
    (wd / "src").symlink_to(REPO / "src")
    bin_dir, log = tmp_path / "bin", tmp_path / "conda.log"
    bin_dir.mkdir()
    conda = bin_dir / "conda"
    conda.write_text(
        STAND_IN_CONDA.format(python=sys.executable, prefix=str(tmp_path), log=str(log))
    )
    conda.chmod(0o755)
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--sdm", "conda", "--conda-create-envs-only",
         "--cores", "1"],
        cwd=wd, capture_output=True, text=True,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(runs) == 1  # one environment for every rule
    run = runs[0]
    # Snakemake handed conda a copy under its conda prefix, not envs/biomedquant.yaml itself
    assert Path(run["env_file"]).parent == wd / ".snakemake" / "conda"
    assert run["root"] == str(wd) and run["rc"] == 0, run["out"][-2000:]
    assert "Would install biomedquant" in run["out"]


def test_a_relative_project_path_would_not_resolve_from_the_copy(tmp_path):
    """Why the env file names the project through a variable: from where Snakemake puts the
    copy, the relative path a file beside the project would use leads to ``.snakemake``."""
    copy = tmp_path / "project" / ".snakemake" / "conda"
    copy.mkdir(parents=True)
    (copy / "requirements.txt").write_text("-e ..\n")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "-r",
         "requirements.txt"],
        cwd=copy, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0 and "does not appear to be a Python project" in proc.stderr
