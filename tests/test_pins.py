"""The conda environments carry exactly the pins of pyproject.toml."""

from __future__ import annotations

import re

import tomllib
import yaml

from conftest import REPO


def _pins(reqs: list[str]) -> dict[str, str]:
    out = {}
    for req in reqs:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)==([^\s;]+)", req.strip())
        if m:
            out[m.group(1).lower()] = m.group(2)
    return out


def _conda_pins(path) -> dict[str, str]:
    env = yaml.safe_load(path.read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    return _pins(pip)


def test_envs_match_pyproject():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    expected = _pins(project["dependencies"])
    assert expected, "pyproject.toml pins nothing"
    envs = [REPO / "environment.yml", *sorted((REPO / "envs").glob("*.yaml"))]
    for env in envs:
        assert _conda_pins(env) == expected, env.name
