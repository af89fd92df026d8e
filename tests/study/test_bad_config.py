"""Bad configs, cache keys and file permissions: refused before any expensive work, one line
each, and nothing lost."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from biomedquant.cli import main
from biomedquant.common.files import atomic_dir, write_json, write_jsonl
from biomedquant.inference.cache import GenerationCache, cache_summary
from biomedquant.study.config_checks import (
    GroupSizeError,
    StrictRevisionError,
    check_group_sizes,
    check_strict_revisions,
)
from biomedquant.study.loading import ConfigError, load_config, load_yaml

from conftest import REPO, copy_workflow, snakemake

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def _config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _one_line_error(capsys, argv: list[str], command: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and err.startswith(f"biomedquant {command}: error: "), err
    return err


@pytest.mark.parametrize(
    ("group_size", "named"),
    [(0, "methods.gptq-bad.group_size: 0 is not one of"),
     (100000, "methods.gptq-bad.group_size: 100000 is not one of"),
     (100, "methods.gptq-bad.group_size: 100 is not one of")],
)  # fmt: skip
def test_group_sizes_gptq_cannot_use_are_refused_by_the_schema(tmp_path, capsys, group_size, named):
    """group_size 0 failed only when the quantize job ran, 100000 after GPTQ had finished."""
    cfg = {**DEMO, "methods": {"gptq-bad": {"kind": "gptq", "bits": 4, "group_size": group_size}}}
    path = _config_file(tmp_path, yaml.safe_dump(cfg))
    err = _one_line_error(capsys, ["plan", "--config", str(path)], "plan")
    assert f"{path}: {named}" in err


def test_a_group_wider_than_the_model_is_refused_before_any_job(tmp_path):
    """1024 is a valid GPTQ group size, but the demo model's layers are 576 columns wide."""
    wide = {"kind": "gptq", "bits": 4, "group_size": 1024}
    cfg = {**DEMO, "methods": {"none": {"kind": "none"}, "gptq-w4g1024": wide}}
    with pytest.raises(GroupSizeError, match="group_size 1024 is larger than the narrowest"):
        check_group_sizes(cfg)
    wd = copy_workflow(tmp_path, cfg)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0
    assert (
        "methods.gptq-w4g1024.group_size 1024 is larger than the narrowest quantized layer of "
        "smollm2_135m (576 input columns)"
    ) in proc.stderr + proc.stdout


def test_quantize_checks_the_group_against_the_fetched_model_first(tiny_fetched, tmp_path, capsys):
    """A model whose shape is not shipped is checked from its config.json before GPTQ runs."""
    method = json.dumps({"kind": "gptq", "bits": 4, "group_size": 128})
    err = _one_line_error(
        capsys,
        ["quantize", "--source", str(tiny_fetched), "--method", method, "--out",
         str(tmp_path / "q")],
        "quantize",
    )  # fmt: skip
    assert "group_size 128 is larger than the narrowest quantized layer" in err
    assert "(64 input columns)" in err and not (tmp_path / "q").exists()


def test_duplicate_yaml_keys_are_refused_everywhere(tmp_path, capsys):
    """A method listed twice under one name used to be dropped silently."""
    text = (REPO / "config" / "config.yaml").read_text() + "\nmethods:\n  none: {kind: none}\n"
    path = _config_file(tmp_path, text)
    with pytest.raises(ConfigError, match=r"study.yaml:\d+: duplicate key 'methods' \(first on"):
        load_yaml(path)
    err = _one_line_error(capsys, ["plan", "--config", str(path)], "plan")
    assert "duplicate key 'methods'" in err
    err = _one_line_error(capsys, ["doctor", "--config", str(path)], "doctor")
    assert "duplicate key 'methods'" in err
    nested = _config_file(tmp_path, "methods:\n  a: {kind: none}\n  a: {kind: bnb-int8}\n")
    with pytest.raises(ConfigError, match="duplicate key 'a'"):
        load_yaml(nested)
    (tmp_path / "wf").mkdir()
    wd = copy_workflow(tmp_path / "wf", DEMO)
    (wd / "config" / "config.yaml").write_text(text)
    proc = snakemake(wd, "-n", check=False)
    assert proc.returncode != 0 and "duplicate key 'methods'" in proc.stderr + proc.stdout
    # the message only: no stack frames of the code that found the problem
    assert "ConfigError: " in proc.stderr and 'File "' not in proc.stderr + proc.stdout


@pytest.mark.parametrize(
    ("edit", "message"),
    [({"sede": 42}, "(top level): unknown key 'sede' (did you mean 'seed'?); valid keys: "),
     ({"inference": {"bach_size": 8}},
      "inference: unknown key 'bach_size' (did you mean 'batch_size'?)"),
     ({"prompts": ["zero-shot", "fve-shot"]},
      "prompts.1: 'fve-shot' is not one of zero-shot, one-shot, five-shot, cot, sc-cot"
      " (did you mean 'five-shot'?)")],
)  # fmt: skip
def test_a_config_typo_under_snakemake_is_one_line_naming_the_nearest_key(tmp_path, edit, message):
    (tmp_path / "wf").mkdir()
    wd = copy_workflow(tmp_path / "wf", {**DEMO, **edit})
    proc = snakemake(wd, "-n", check=False)
    lines = (proc.stderr + proc.stdout).strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, lines[:20]
    assert lines[0].startswith("ConfigError: config/config.yaml: ") and message in lines[0]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**DEMO, **edit}))
    plan = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "plan", "--config", str(bad)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert plan.returncode != 0 and message in plan.stderr


def test_doctor_validates_the_config_first_and_survives_bad_yaml(tmp_path, capsys):
    broken = _config_file(tmp_path, "datasets: [hoc\nmodels: {")
    err = _one_line_error(capsys, ["doctor", "--config", str(broken)], "doctor")
    assert f"{broken}:" in err and "YAML syntax error" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**DEMO, "prompts": ["zero-shot", "ten-shot"]}))
    assert main(["doctor", "--config", str(bad)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [f"[FAIL] config: {bad}: prompts.1: 'ten-shot' is not one of zero-shot, "
                   "one-shot, five-shot, cot, sc-cot (did you mean 'one-shot'?)"]  # fmt: skip
    missing = tmp_path / "nothing.yaml"
    err = _one_line_error(capsys, ["doctor", "--config", str(missing)], "doctor")
    assert f"{missing}: config file not found" in err


def test_strict_revisions_refuse_a_moving_branch(tmp_path, capsys):
    paper = load_config(REPO / "config" / "paper.yaml")
    assert paper["strict_revisions"] is True
    with pytest.raises(
        StrictRevisionError, match="12 model\\(s\\) not pinned.*llama31_8b \\(main\\)"
    ):
        check_strict_revisions(paper)
    pinned = {
        **paper,
        "models": {k: {**v, "revision": "0" * 40} for k, v in paper["models"].items()},
    }
    check_strict_revisions(pinned)  # full commit hashes pass
    spec = json.dumps({"source": "hf", "id": "org/tiny", "revision": "main"})
    err = _one_line_error(
        capsys,
        ["fetch-model", "--model", "tiny", "--spec", spec, "--out", str(tmp_path / "m"),
         "--strict-revisions"],
        "fetch-model",
    )  # fmt: skip
    assert "models.tiny.revision is 'main': strict revisions need the full 40-character" in err
    assert main(["doctor", "--config", str(REPO / "config" / "paper.yaml")]) == 1
    out = capsys.readouterr().out
    assert "[FAIL] revisions: 12 Hugging Face model(s) not pinned to a commit hash" in out


def test_a_real_run_of_an_unpinned_strict_study_refuses_to_start(tmp_path):
    cfg = {**DEMO, "strict_revisions": True, "datasets": ["hoc"], "prompts": ["zero-shot"],
           "models": {"m": {"source": "hf", "id": "org/m", "revision": "main"}},
           "methods": {"none": {"kind": "none"}}}  # fmt: skip
    wd = copy_workflow(tmp_path, cfg)
    dry = snakemake(wd, "-n")  # a dry run plans it, with a warning
    assert "a run (not a dry run) will refuse to start" in dry.stderr
    proc = snakemake(wd, "resources/raw/hoc/test.raw", check=False)
    assert proc.returncode != 0
    assert "strict revisions: 1 model(s) not pinned to a commit hash: m (main)" in proc.stderr
    assert not (wd / "resources").exists()  # no job ran


def _cache(tmp_path: Path) -> tuple[Path, str]:
    folder = tmp_path / "cache"
    key = "a" * 64
    cache = GenerationCache(folder, key)
    cache.put_many({"k": {"text": "hello"}})
    cache.close()
    return folder, key


@pytest.mark.parametrize("key", ["../victim", "", "*", "a" * 63])
def test_cache_clear_takes_only_existing_model_keys(tmp_path, capsys, key):
    """'../victim' used to delete a file outside the cache; '' cleared all of it."""
    folder, real = _cache(tmp_path)
    victim = tmp_path / "victim.sqlite"
    victim.write_text("precious")
    err = _one_line_error(
        capsys, ["cache", "clear", "--dir", str(folder), "--model-key", key], "cache"
    )
    assert f"--model-key {key!r} is not a cache in {folder}" in err
    assert victim.read_text() == "precious" and (folder / f"{real}.sqlite").exists()
    assert main(["cache", "clear", "--dir", str(folder), "--model-key", real]) != 0  # asks
    assert victim.read_text() == "precious" and (folder / f"{real}.sqlite").exists()
    assert "confirm with --yes" in capsys.readouterr().err
    assert main(["cache", "clear", "--dir", str(folder), "--model-key", real, "--yes"]) == 0
    assert not list(folder.glob("*.sqlite*"))


def test_a_corrupt_cache_file_is_moved_aside_and_the_run_goes_on(tmp_path, capsys, caplog):
    folder, key = _cache(tmp_path)
    (folder / f"{key}.sqlite").write_bytes(b"not a database" * 100)
    for p in folder.glob("*-wal"):
        p.unlink()
    assert main(["cache", "info", "--dir", str(folder)]) == 0
    assert "0 model(s), 0 generations" in capsys.readouterr().out
    aside = list(folder.glob(f"{key}.sqlite.corrupt-*"))
    assert len(aside) == 1 and f"moved aside to {aside[0]}" in caplog.text
    (folder / f"{key}.sqlite").write_bytes(b"broken again" * 100)
    cache = GenerationCache(folder, key)  # what inference opens: a fresh, working cache
    cache.put_many({"k": {"text": "again"}})
    assert cache.get_many(["k"]) == {"k": {"text": "again"}}
    cache.close()
    assert [r["entries"] for r in cache_summary(folder)] == [1]


@pytest.mark.parametrize(("umask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755),
                                                              (0o002, 0o664, 0o775),
                                                              (0o077, 0o600, 0o700)])  # fmt: skip
def test_outputs_follow_the_umask(tmp_path, umask, file_mode, dir_mode):
    """Every output used to be 0600 and every folder 0700, whatever the umask."""
    old = os.umask(umask)
    try:
        write_json(tmp_path / "a.json", {})
        write_jsonl(tmp_path / "b.jsonl", [{"id": "x"}])
        with atomic_dir(tmp_path / "model") as tmp:
            (tmp / "w.bin").write_bytes(b"0")
        db = GenerationCache(tmp_path / "cache", "k")
        db.close()
    finally:
        os.umask(old)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(tmp_path / "a.json") == file_mode and mode(tmp_path / "b.jsonl") == file_mode
    assert mode(tmp_path / "model") == dir_mode and mode(tmp_path / "model" / "w.bin") == file_mode
    assert mode(tmp_path / "cache" / "k.sqlite") == file_mode


def test_a_corrupt_cache_is_not_confused_with_a_locked_one(tmp_path):
    """Only damage moves a file aside: a missing table is an empty cache, not a corrupt one."""
    folder = tmp_path / "cache"
    folder.mkdir()
    sqlite3.connect(folder / "empty.sqlite").close()
    assert cache_summary(folder) == [{"model_key": "empty", "entries": 0, "bytes": 0}]
    assert (folder / "empty.sqlite").exists()
