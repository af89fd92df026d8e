"""A model's export job (biomedquant.exports.model): its method list is checked, and a failure
leaves the previous exports whole."""

from __future__ import annotations

import pytest

from biomedquant.exports.model import MethodExport, export_model


def test_a_method_entry_names_what_it_lacks():
    entry = MethodExport.from_json({"name": "none", "spec": {"kind": "none"}, "manifest": "m"})
    assert entry.artifact is None
    with pytest.raises(ValueError, match="needs name, spec and manifest"):
        MethodExport.from_json({"name": "none", "spec": {}})
    with pytest.raises(ValueError, match="needs name, spec and manifest"):
        MethodExport.from_json({"name": "x", "spec": {}, "manifest": "m", "artefact": "a"})


def test_a_failed_export_leaves_the_previous_folder_as_it_was(tmp_path):
    out = tmp_path / "exports" / "tiny"
    (out / "none" / "lm_eval").mkdir(parents=True)
    (out / "none" / "lm_eval" / "results_old.json").write_text("{}")
    methods = [MethodExport("none", {"kind": "none"}, str(tmp_path / "missing.json"))]
    with pytest.raises(FileNotFoundError):
        export_model("tiny", {"source": "hf", "id": "x/y"}, methods, out)
    assert (out / "none" / "lm_eval" / "results_old.json").read_text() == "{}"
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no temporary left


def test_a_method_listed_twice_is_refused(tmp_path):
    m = MethodExport("none", {"kind": "none"}, "m.json")
    with pytest.raises(ValueError, match="listed twice"):
        export_model("tiny", {}, [m, m], tmp_path / "out")
