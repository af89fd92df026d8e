"""Faults a long study meets, each with the behaviour users are promised
(docs/guide/troubleshooting.md, "When things go wrong"). Others live beside the code they test:
config errors in test_workflow and test_bad_inputs_config, corrupt downloads in test_datasets
and test_real_data, servers that cut, trickle and fail (and signals mid-download) in
test_downloads, bad scoring inputs in test_bad_inputs, every bad input through the command line
in test_bad_inputs_cli, kill -9 during inference and CUDA out of memory in test_engine,
unparsable outputs in test_parsing, SLURM failures in test_slurm."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from biomedquant.common.files import read_json, read_jsonl, sha256_tree, write_json
from biomedquant.models.fetch import ModelSourceError, fetch_model

GPTQ = {
    "kind": "gptq",
    "bits": 4,
    "group_size": 32,
    "calibration": {"source": "generic", "n_samples": 8, "seq_len": 32},
}


def test_kill_9_during_quantization_leaves_no_artifact_and_rerun_recomputes(tiny_fetched, tmp_path):
    out = tmp_path / "models" / "gptq"
    cmd = [
        sys.executable, "-m", "biomedquant.cli", "-v", "quantize", "--source", str(tiny_fetched),
        "--method", json.dumps(GPTQ), "--out", str(out), "--cpu-threads", "1",
    ]  # fmt: skip
    log = tmp_path / "quantize.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.time() + 300
        # Kill once GPTQ is quantizing layers: the artifact is being made, not yet written.
        while time.time() < deadline and proc.poll() is None:
            if "Quantizing" in log.read_text(errors="replace"):
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "quantization finished before it could be killed"
    assert not out.exists()  # nothing at the artifact's path, so nothing can use or cache it
    leftovers = list(out.parent.glob(".gptq.*.tmp"))  # the dead job's scratch folder, if any
    subprocess.run(cmd, check=True, capture_output=True)
    assert (out / "quantize_config.json").exists() and list(out.glob("*.safetensors"))
    assert read_json(out / "provenance.json")["calibration"]["n_samples"] == 8
    for stale in leftovers:  # a stale scratch folder never stands in for the artifact
        assert stale != out


def test_custom_code_is_refused_unless_trusted(tiny_source, tmp_path):
    repo = tmp_path / "custom"
    shutil.copytree(tiny_source, repo)
    config = json.loads((repo / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilForCausalLM"}
    (repo / "config.json").write_text(json.dumps(config))
    (repo / "modeling_evil.py").write_text("import os  # would run on load\n")
    spec = {"source": "local", "path": str(repo)}
    with pytest.raises(ModelSourceError, match="custom code.*trust_remote_code: true"):
        fetch_model("evil", spec, tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    prov = fetch_model("evil", {**spec, "trust_remote_code": True}, tmp_path / "trusted")
    assert prov["spec"]["trust_remote_code"] is True


def test_pickle_only_weights_are_refused(tiny_source, tmp_path):
    repo = tmp_path / "pickled"
    shutil.copytree(tiny_source, repo)
    for f in repo.glob("*.safetensors"):
        f.rename(f.with_suffix(".bin"))
    with pytest.raises(
        ModelSourceError, match="holds no \\*.safetensors \\(it holds pickled weights: model.bin\\)"
    ):
        fetch_model("pickled", {"source": "local", "path": str(repo)}, tmp_path / "out")


def test_access_token_is_used_but_never_written(tiny_source, tmp_path, monkeypatch):
    """HF_TOKEN goes to huggingface_hub (which sends it to the Hub); no biomedquant output,
    provenance or log holds it."""
    from huggingface_hub.utils import get_token

    secret = "hf_biomedquantTESTsecret0123456789"
    hub = tmp_path / "hub"
    repo_dir = hub / "models--org--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    snap = repo_dir / "snapshots" / commit
    shutil.copytree(tiny_source, snap)
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    env = {**os.environ, "HF_TOKEN": secret, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    monkeypatch.setenv("HF_TOKEN", secret)
    assert get_token() == secret  # the hub client picks it up for downloads
    out = tmp_path / "results"
    spec = {"source": "hf", "id": "org/tiny", "revision": "main"}
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "-v", "fetch-model", "--model", "tiny",
         "--spec", json.dumps(spec), "--out", str(out / "none")],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert read_json(out / "none" / "provenance.json")["resolved_revision"] == commit
    assert secret not in proc.stdout + proc.stderr
    for f in out.rglob("*"):
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


@pytest.fixture
def tiny_disk(tmp_path):
    """A real, nearly full file system: a 256 KiB tmpfs (needs root; skipped otherwise)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_gives_a_clear_error_and_keeps_earlier_results(tiny_disk, tmp_path):
    from biomedquant.evaluation.scoring import TABLE_COLUMNS

    # An earlier, complete table on the small disk ...
    table = tiny_disk / "scores.csv"
    table.write_text(",".join(TABLE_COLUMNS) + "\nearlier,row\n")
    before = table.read_bytes()
    # ... then an aggregate whose table does not fit on it.
    scores = []
    for i in range(300):
        path = tmp_path / f"s{i}.json"
        write_json(
            path,
            {
                "model": "m" * 200, "method": "none", "dataset": "hoc", "task": "mlc",
                "prompt": "zero-shot", "n": 10, "parse_failure_rate": 0.0,
                "metrics": {f"metric_{k}": {"value": 0.5, "ci_low": 0.4, "ci_high": 0.6}
                            for k in range(6)},
                "primary_metric": "metric_0",
            },
        )  # fmt: skip
        scores.append(str(path))
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "aggregate", "--kind", "scores",
         "--out", str(table), *scores],
        capture_output=True, text=True,
    )  # fmt: skip
    message = proc.stderr
    assert proc.returncode == 1, message[-2000:]
    assert "no space left on the device" in message and "earlier results are intact" in message
    assert "Traceback" not in message
    assert table.read_bytes() == before
    assert [p.name for p in tiny_disk.iterdir()] == ["scores.csv"]  # no temporary file left


def test_snakemake_keeps_an_undeclared_partial_file_of_a_failed_job(tmp_path):
    """The engine's resume rests on this: Snakemake deletes a failed job's declared outputs,
    output folder, but not the ``.partial`` folder beside it, which the infer rule does not
    declare."""
    rules = Path(__file__).resolve().parents[2].joinpath("workflow/rules/inference.smk").read_text()
    assert ".partial" not in rules
    (tmp_path / "Snakefile").write_text(
        "rule infer:\n"
        "    output: directory('out')\n"
        "    shell: 'mkdir -p out out.partial/ds; echo done-item >> out.partial/ds/p.jsonl.partial;"
        " echo half > out/p.jsonl; exit 1'\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1"], cwd=tmp_path, capture_output=True
    )
    assert proc.returncode != 0
    assert not (tmp_path / "out").exists()  # the failed job's output folder: removed
    kept = tmp_path / "out.partial/ds/p.jsonl.partial"
    assert kept.read_text() == "done-item\n"  # kept for the rerun


@pytest.mark.parametrize("junk", ["", "   ", "I cannot answer that.", "\x00\ufffd###", "A B C D"])
def test_unparsable_or_empty_output_is_counted_and_scored_as_the_worst_answer(
    demo_prepared, tmp_path, junk
):
    """Half the items answered right in words, half with junk: accuracy is exactly one half,
    the junk is counted as unparsable, and nothing raises."""
    from biomedquant.common.files import read_jsonl, write_jsonl
    from biomedquant.evaluation.scoring import score_predictions

    gold = read_jsonl(demo_prepared["pubmedqa"])
    preds = [
        {"id": r["id"], "output": f"Answer: {r['answer']}" if i % 2 == 0 else junk}
        for i, r in enumerate(gold)
    ]
    write_jsonl(tmp_path / "p.jsonl", preds)
    s = score_predictions(
        predictions_path=tmp_path / "p.jsonl",
        gold_path=demo_prepared["pubmedqa"],
        dataset="pubmedqa",
        model="m",
        method="none",
        prompt="zero-shot",
        out_path=tmp_path / "s.json",
        resamples=0,
    )
    assert s["metrics"]["accuracy"]["value"] == 0.5
    assert s["parse_failure_rate"] == 0.5


def _cli(*args: str, umask: int | None = None) -> subprocess.CompletedProcess:
    """``biomedquant ARGS`` in its own process, as a user or a rule runs it."""
    return subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )


def _one_line(proc: subprocess.CompletedProcess, code: int = 1) -> str:
    """The error a failed command printed: exactly one line, the exit code asked, no
    traceback and no bug report."""
    assert proc.returncode == code, proc.stderr[-2000:]
    lines = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "this is a bug" not in proc.stderr
    return lines[0]


def _fetch_cli(name: str, folder: Path, out: Path, umask: int | None = None):
    spec = json.dumps({"source": "local", "path": str(folder)})
    return _cli("fetch-model", "--model", name, "--spec", spec, "--out", str(out), umask=umask)


def test_a_fetched_local_model_is_a_copy_the_users_later_edits_cannot_change(tiny_source, tmp_path):
    """The user's folder (weights 0600, as save_pretrained writes them) fetched under umask
    002: the study's copy is its own file (no hard link), group-readable; new weights then
    written over the user's file in place (cp, rsync --inplace) leave the study's baseline,
    and the hash its provenance and the generation cache rely on, as they were."""
    mine = tmp_path / "my_model"
    shutil.copytree(tiny_source, mine)
    weights = mine / "model.safetensors"
    weights.chmod(0o600)
    out = tmp_path / "resources" / "models" / "tiny" / "none"
    proc = _fetch_cli("tiny", mine, out, umask=0o002)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fetched = out / "model.safetensors"
    assert fetched.stat().st_nlink == 1 and fetched.stat().st_ino != weights.stat().st_ino
    assert fetched.stat().st_mode & 0o777 == 0o664  # the study's umask, not the source's 0600
    before = fetched.read_bytes()
    with weights.open("r+b") as fh:  # new weights over the old file, in place (same inode)
        fh.seek(len(before) - 64)
        fh.write(bytes(64))
    assert weights.read_bytes() != before and fetched.read_bytes() == before
    recorded = read_json(out / "provenance.json")["weights_sha256"]
    (out / "provenance.json").unlink()
    assert sha256_tree(out) == recorded  # the recorded hash still describes the baseline


def test_fetch_model_by_hand_refuses_a_folder_without_config_json(tiny_source, tmp_path):
    """The plan-time check refuses it; ``fetch-model`` run alone said nothing (exit 0)."""
    folder = tmp_path / "no_config"
    shutil.copytree(tiny_source, folder)
    (folder / "config.json").unlink()
    out = tmp_path / "out" / "none"
    line = _one_line(_fetch_cli("tiny", folder, out))
    assert f"{folder} holds no config.json: it is not a model folder" in line
    assert "save_pretrained" in line and not out.exists()


def test_unloadable_model_folders_end_in_one_line_naming_the_file(
    tiny_fetched, demo_prepared, tmp_path
):
    """A model.safetensors cut short and a folder holding only a pickled .bin: ``infer``
    names the file and the fix (exit 1) instead of an internal error (exit 70), and leaves
    no output; ``fetch-model`` refuses the cut file too."""
    import torch
    from safetensors.torch import load_file

    cut = tmp_path / "cut"
    shutil.copytree(tiny_fetched, cut)
    data = (cut / "model.safetensors").read_bytes()
    (cut / "model.safetensors").write_bytes(data[: len(data) // 2])
    pickled = tmp_path / "pickled"
    shutil.copytree(tiny_fetched, pickled)
    torch.save(load_file(pickled / "model.safetensors"), pickled / "pytorch_model.bin")
    (pickled / "model.safetensors").unlink()
    for folder, expected in (
        (cut, f"{cut / 'model.safetensors'}: truncated safetensors file"),
        (pickled, f"{pickled} holds no *.safetensors (it holds pickled weights: pytorch_model"),
    ):
        out = tmp_path / "gen" / folder.name
        proc = _cli(
            "infer", "--model-dir", str(folder), "--method", '{"kind": "none"}',
            "--dataset", "pubmedqa", "--data", str(demo_prepared["pubmedqa"]),
            "--prompt", "zero-shot", "--out", str(out / "p.jsonl"),
            "--run-record", str(out / "p.run.json"), "--cpu-threads", "1",
        )  # fmt: skip
        line = _one_line(proc)
        assert expected in line, line
        assert not (out / "p.jsonl").exists()
    assert "copy or download the model again" in _one_line(
        _fetch_cli("tiny", cut, tmp_path / "refetch")
    )


def _infer_cli(model_dir: Path, data: Path, out: Path, cache: Path) -> subprocess.CompletedProcess:
    return _cli(
        "infer", "--model-dir", str(model_dir), "--method", '{"kind": "none"}',
        "--dataset", "pubmedqa", "--data", str(data), "--prompt", "zero-shot",
        "--out", str(out / "p.jsonl"), "--run-record", str(out / "p.run.json"),
        "--max-new-tokens", "6", "--cpu-threads", "1", "--cache-dir", str(cache),
    )  # fmt: skip


def test_a_full_or_read_only_cache_disk_turns_the_cache_off_not_the_study(
    tiny_disk, tiny_fetched, demo_prepared, tmp_path
):
    """The generation cache on a full disk ("database or disk is full") and then on a
    read-only mount: each job warns in one line and generates without the cache (exit 0,
    not exit 70 "this is a bug"), and its outputs are those of a job with a working cache."""
    from conftest import assert_outputs_vary, numbered_items

    data = numbered_items(demo_prepared, tmp_path / "items.jsonl", 4)
    cache = tiny_disk / "cache"
    filler = tiny_disk / "filler"
    with pytest.raises(OSError), filler.open("wb", buffering=0) as fh:  # to the last byte
        while True:
            fh.write(bytes(4096))
    outputs = {}
    for case in ("full", "working", "read-only"):
        if case == "working":
            filler.unlink()
        if case == "read-only":
            subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
        proc = _infer_cli(tiny_fetched, data, tmp_path / case, cache)
        assert proc.returncode == 0, proc.stderr[-2000:]
        warned = [line for line in proc.stderr.splitlines() if "cannot be used" in line]
        assert len(warned) == (0 if case == "working" else 1), proc.stderr[-2000:]
        assert "this is a bug" not in proc.stderr and "Traceback" not in proc.stderr
        if case == "full":
            assert "database or disk is full" in warned[0] and "going on without it" in warned[0]
        used = read_json(tmp_path / case / "p.run.json")["generation_cache"]
        assert (used is not None) == (case == "working")  # the run record says which
        outputs[case] = [r["output"] for r in read_jsonl(tmp_path / case / "p.jsonl")]
    assert len(outputs["full"]) == 4
    assert_outputs_vary(outputs["working"])
    assert outputs["full"] == outputs["working"] == outputs["read-only"]


def test_a_prepared_split_cut_short_is_refused_before_anything_reads_it(
    tmp_path_factory, tmp_path, tiny_source
):
    """A finished study whose prepared HoC split loses its last item (cut at a line
    boundary, so still valid JSON Lines): Snakemake's rerun used to score 3 items as if they
    were the 4 prepared, exit 0. The split is checked against its provenance as a run
    starts and wherever it is read: the run stops in one line naming the file, the counts
    and the fix, before any job (and its deletion of its old outputs), so every finished
    result and artifact stays as it was."""
    from support.study import copy_study, tiny_study

    from conftest import snakemake

    wd = copy_study(tiny_study(tmp_path_factory, tiny_source), tmp_path / "study")
    split = Path("resources/datasets/hoc/test.jsonl")
    lines = (wd / split).read_text(encoding="utf-8").splitlines(keepends=True)
    assert len(lines) == read_json(wd / f"{split}.provenance.json")["n_written"] == 4

    def finished() -> dict[Path, bytes]:
        return {
            p: p.read_bytes()
            for folder in ("results", "resources/models")
            for p in (wd / folder).rglob("*")
            if p.is_file()
        }

    before = finished()
    (wd / split).write_text("".join(lines[:3]), encoding="utf-8")
    proc = snakemake(wd, check=False)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert proc.stderr.strip().splitlines()[-1] == (
        f"ProvenanceMismatchError: {split}: 3 records, but test.jsonl.provenance.json"
        " records 4 (n_written); it was changed after it was written: delete it and its"
        " provenance and run again (Snakemake writes both again)"
    )
    # refused as the run starts, before any job (each would delete its outputs first)
    assert "Error in rule" not in proc.stderr and finished() == before
    # where it is read, the same check: a step run by hand on the split
    line = _one_line(_cli("study-data", "--out", str(tmp_path / "s.json"), str(wd / split)))
    assert f"{wd / split}: 3 records, but test.jsonl.provenance.json records 4" in line


def test_a_truncated_run_record_is_named_in_the_error(tmp_path_factory, tmp_path, tiny_source):
    """One of a study's run records cut short: ``memory-table`` said "Expecting property
    name ... line 74" without naming which of hundreds of files; it names the file (every
    reader of JSON files does), exit 1, and the existing table is untouched."""
    from support.study import copy_study, tiny_study

    wd = copy_study(tiny_study(tmp_path_factory, tiny_source), tmp_path / "study")
    manifests = sorted(str(p.relative_to(wd)) for p in (wd / "results/evaluation").glob("*/*.json"))
    record = Path(read_json(wd / manifests[-1])["runs"][-1]["run_record"])  # relative to wd
    text = (wd / record).read_text(encoding="utf-8")
    (wd / record).write_text(text[: len(text) // 2], encoding="utf-8")
    table = wd / "results/tables/memory.csv"
    before = table.read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "biomedquant.cli", "memory-table", "--config",
         "config/config.yaml", "--out", str(table), "--manifests", *manifests],
        cwd=wd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    line = _one_line(proc)
    assert f"error: {record}:" in line and "not valid JSON" in line, line
    assert "cut short or was edited" in line and table.read_bytes() == before


def _alias_bomb() -> str:
    """A YAML "billion laughs" in the shape of a config: nine levels of nine aliases each,
    10^9 values once expanded, in under 700 bytes. Mappings, so that Snakemake's own merge of
    a config walks it too."""
    lines = ["seed: 1", "l0: &l0 {" + ", ".join(f"{k}: lol" for k in "abcdefghi") + "}"]
    for i in range(1, 9):
        lines.append(f"l{i}: &l{i} {{" + ", ".join(f"{k}: *l{i - 1}" for k in "abcdefghi") + "}")
    return "\n".join([*lines, "models: *l8", ""])


def test_a_yaml_alias_bomb_is_refused_at_once_in_one_line(tmp_path):
    """``plan`` used to run past a minute on it, and ``snakemake -n`` to exhaust memory."""
    from conftest import copy_workflow

    bomb = _alias_bomb()
    assert len(bomb.encode()) < 800
    expected = "YAML aliases here expand to more than 200,000 values (an alias bomb?)"
    (tmp_path / "bomb.yaml").write_text(bomb)
    line = _one_line(_cli("plan", "--config", str(tmp_path / "bomb.yaml")))
    assert f"{tmp_path / 'bomb.yaml'}:" in line and expected in line, line
    wd = copy_workflow(tmp_path / "wf", {})
    (wd / "config" / "config.yaml").write_text(bomb)  # the workflow's default config
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
        cwd=wd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert proc.stderr.startswith("ConfigError: config/config.yaml:") and expected in proc.stderr
    assert proc.stderr.strip().count("\n") == 0  # one line, no stack frames


def test_a_yte_config_as_the_default_is_refused_before_its_code_runs(tmp_path):
    """``__use_yte__: true`` makes Snakemake evaluate a config's Python when it reads it, even
    under ``-n``: as the workflow's default config it is refused before Snakemake reads it
    (a ``--configfile`` is read by Snakemake's command line first; docs/guide/troubleshooting)."""
    from conftest import copy_workflow

    marker = tmp_path / "code_ran"
    wd = copy_workflow(tmp_path / "wf", {})
    (wd / "config" / "config.yaml").write_text(
        f"__use_yte__: true\nseed: ?__import__('pathlib').Path({str(marker)!r}).touch() or 1\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
        cwd=wd, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 1 and not marker.exists(), proc.stderr[-2000:]
    assert proc.stderr.startswith("ConfigError: config/config.yaml: __use_yte__ makes Snakemake")
