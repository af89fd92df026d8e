"""notebooks/explore_results.ipynb runs top to bottom on the results of a tiny study."""

from __future__ import annotations

import pytest
from support.study import tiny_study

from conftest import REPO

NOTEBOOK = REPO / "notebooks" / "explore_results.ipynb"


def test_notebook_executes_on_tiny_study_results(tmp_path_factory, tiny_source, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is a dev dependency")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is a dev dependency")
    pytest.importorskip("ipykernel", reason="ipykernel runs the notebook's kernel")
    study = tiny_study(tmp_path_factory, tiny_source)
    # the kernel inherits the environment: the notebook reads BIOMEDQUANT_RESULTS
    monkeypatch.setenv("BIOMEDQUANT_RESULTS", str(study / "results"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},
    )
    client.execute()

    outputs = {c["id"]: c.get("outputs", []) for c in nb.cells if c["cell_type"] == "code"}
    errors = [o for outs in outputs.values() for o in outs if o.get("output_type") == "error"]
    assert not errors
    text = "\n".join(
        str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", ""))
        for outs in outputs.values()
        for o in outs
    )
    assert str(study / "results") in text  # it read the study's results, not the repo's
    assert "rows" in text and "answers changed" in text
    # the redrawn figure is shown as an image
    assert any("image/png" in o.get("data", {}) for outs in outputs.values() for o in outs)
