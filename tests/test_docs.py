"""The documentation: the generated reference pages equal what the schema and the parser
give, the site builds in strict mode (every internal link and anchor resolves), and the README
stays a first screen."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from biomedquant.cli.docs_reference import PAGES, config_header

from conftest import REPO


@pytest.mark.parametrize("page", sorted(PAGES))
def test_generated_reference_page_equals_its_source(page):
    committed = (REPO / "docs" / "reference" / page).read_text()
    assert committed == PAGES[page](), (
        f"docs/reference/{page} differs from what it is generated from: run "
        "`python -m biomedquant.cli.docs_reference docs/reference` and commit the result"
    )


def test_config_reference_lists_every_shipped_config_and_documents_every_key():
    text = PAGES["config.md"]()
    for path in (REPO / "config").glob("*.yaml"):
        assert f"`config/{path.name}`" in text and config_header(path), path.name
    cells = [
        [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
        for line in text.splitlines()
        if line.startswith("| `") and not line.startswith("| `config/")
    ]
    assert len(cells) > 60 and all(len(row) == 4 for row in cells)
    assert [row[0] for row in cells if not row[3]] == []


def test_docs_site_builds_in_strict_mode(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()


def test_readme_fits_two_screens_and_links_into_the_docs():
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 150
    for page in ("docs/guide/gpus.md", "docs/guide/slurm.md", "docs/reference/config.md"):
        assert page in readme and (REPO / page).exists(), page
