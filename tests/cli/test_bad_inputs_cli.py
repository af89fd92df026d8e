"""Every bad input of the fault list, through the command line: none ends in a traceback.

Each case is a command a user could type with a bad input; the expectation is the documented
one: exit code 1 and one line on stderr naming the cause, or (a corrupt cache) a warning and
success. Servers are local (127.0.0.1) and misbehave on purpose; see test_downloads.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from support.servers import misbehaving_server

from biomedquant import cli
from biomedquant.common.files import read_jsonl
from biomedquant.datasets.download import demo_root
from biomedquant.datasets.registry import get_dataset
from biomedquant.inference.cache import GenerationCache

from conftest import REPO

DEMO = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
KEY = "c" * 64


class Ctx:
    """What the cases build on: a folder, the prepared demo splits, a misbehaving server."""

    def __init__(self, tmp: Path, prepared: dict[str, Path], url: str) -> None:
        self.tmp, self.prepared, self.url = tmp, prepared, url

    def jsonl(self, name: str, rows: list) -> str:
        path = self.tmp / name
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        return str(path)

    def right(self, dataset: str, field: str) -> list[dict]:
        return [{"id": g["id"], "prediction": g[field]} for g in read_jsonl(self.prepared[dataset])]

    def score(
        self, dataset: str, preds: str, *extra: str, gold: str | None = None, out: str = ""
    ) -> list[str]:
        return ["score", "--dataset", dataset, "--gold", gold or str(self.prepared[dataset]),
                "--predictions", preds, "--out", out or str(self.tmp / "s.json"),
                "--resamples", "10", *extra]  # fmt: skip

    def config(self, cfg: dict | str) -> str:
        path = self.tmp / "study.yaml"
        path.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg), encoding="utf-8")
        return str(path)

    def cache(self) -> str:
        folder = self.tmp / "cache"
        c = GenerationCache(folder, KEY)
        c.put_many({"k": {"text": "x"}})
        c.close()
        return str(folder)

    def download(self, dataset: str, kind: str, *extra: str, url: str = "") -> list[str]:
        return ["download", "--dataset", dataset, "--split", "test", "--base-url",
                f"{url or self.url}/{kind}/", "--out", str(self.tmp / "raw" / f"{dataset}.raw"),
                "--lock", str(self.tmp / "checksums.lock"), "--timeout", "2", *extra]  # fmt: skip


def _with(rows: list[dict], i: int, **fields) -> list[dict]:
    rows[i] = {**rows[i], **fields}
    return rows


def _cut_test_file(c: Ctx) -> list[str]:
    """Half of a test file of a local mirror (a cut transfer nothing else could catch)."""
    rel = get_dataset("hoc").files["test"].path
    lines = (demo_root() / rel).read_text(encoding="utf-8").splitlines(keepends=True)
    raw = c.tmp / "hoc.raw"
    raw.write_text("".join(lines[: len(lines) // 2]), encoding="utf-8")
    (c.tmp / "hoc.raw.provenance.json").write_text('{"demo": false}')
    return ["prepare", "--dataset", "hoc", "--split", "test", "--raw", str(raw),
            "--out", str(c.tmp / "hoc.jsonl")]  # fmt: skip


def _plan_with_group(c: Ctx, group_size: int) -> list[str]:
    method = {"kind": "gptq", "bits": 4, "group_size": group_size}
    method["calibration"] = {"source": "generic", "n_samples": 12, "seq_len": 512}
    methods = {"none": {"kind": "none"}, "q": method}
    return ["plan", "--config", c.config({**DEMO, "methods": methods})]


Case = tuple[Callable[[Ctx], list[str]], str]
CASES: dict[str, Case] = {
    # downloads
    "cut transfer, no pinned hash": (lambda c: c.download("chemprot", "cut"), "cut short"),
    "cut transfer, pinned hash": (lambda c: c.download("hoc", "cut"), "cut short"),
    "trickling server": (
        lambda c: c.download("chemprot", "trickle", "--deadline", "1"),
        "deadline",
    ),
    "failing server": (lambda c: c.download("chemprot", "fail"), "HTTP 503"),
    "password in the URL": (
        lambda c: c.download("chemprot", "fail", url=c.url.replace("//", "//ann:s3cret@")),
        "***@127.0.0.1",
    ),
    "cut test file prepared": (_cut_test_file, "the official test set has 315"),
    "negative deadline": (lambda c: c.download("hoc", "full", "--deadline", "-1"), "--deadline"),
    "a split that does not exist": (
        lambda c: [
            "prepare",
            "--dataset",
            "hoc",
            "--split",
            "tset",
            "--raw",
            "x",
            "--out",
            str(c.tmp / "y.jsonl"),
        ],
        "has no split 'tset'; it has ['test', 'train', 'dev']",
    ),  # fmt: skip
    "a model folder that does not exist": (
        lambda c: [
            "infer",
            "--model-dir",
            "/nonexistent",
            "--method",
            '{"kind": "none"}',
            "--dataset",
            "hoc",
            "--data",
            str(c.prepared["hoc"]),
            "--prompt",
            "zero-shot",
            "--out",
            str(c.tmp / "g.jsonl"),
            "--run-record",
            str(c.tmp / "r.json"),
        ],
        "model folder /nonexistent does not exist",
    ),  # fmt: skip
    # scoring
    "chemprot gold scored as ddi": (
        lambda c: c.score(
            "ddi", c.jsonl("p", c.right("chemprot", "label")), gold=str(c.prepared["chemprot"])
        ),
        "not in the label set",
    ),  # fmt: skip
    "label 'Yes' outside the set": (
        lambda c: c.score("ddi", c.jsonl("p", _with(c.right("ddi", "label"), 0, prediction="Yes"))),
        "not in the label set",
    ),  # fmt: skip
    "label 'CPR:7' outside the set": (
        lambda c: c.score(
            "chemprot", c.jsonl("p", _with(c.right("chemprot", "label"), 0, prediction="CPR:7"))
        ),
        "label set",
    ),  # fmt: skip
    "NER tags of the wrong length": (
        lambda c: c.score(
            "ncbi_disease",
            c.jsonl("p", _with(c.right("ncbi_disease", "tags"), 0, prediction=["O"])),
        ),
        "tags, item",
    ),  # fmt: skip
    "duplicate prediction ids": (
        lambda c: c.score(
            "hoc", c.jsonl("p", [*c.right("hoc", "labels"), c.right("hoc", "labels")[0]])
        ),
        "duplicate id",
    ),  # fmt: skip
    "prediction for an id not in gold": (
        lambda c: c.score(
            "hoc", c.jsonl("p", [*c.right("hoc", "labels"), {"id": "zz", "prediction": []}])
        ),
        "'zz'",
    ),  # fmt: skip
    "duplicate gold items": (
        lambda c: c.score(
            "hoc",
            c.jsonl("p", c.right("hoc", "labels")),
            gold=c.jsonl("g", [*read_jsonl(c.prepared["hoc"]), read_jsonl(c.prepared["hoc"])[0]]),
        ),
        "duplicate id",
    ),  # fmt: skip
    "--level -1": (
        lambda c: c.score("hoc", c.jsonl("p", c.right("hoc", "labels")), "--level", "-1"),
        "between 0 and 1",
    ),
    "--out is the predictions file": (
        lambda c: c.score("hoc", c.jsonl("p", c.right("hoc", "labels")), out=str(c.tmp / "p")),
        "would overwrite its input",
    ),
    "int prediction": (
        lambda c: c.score("ddi", c.jsonl("p", _with(c.right("ddi", "label"), 1, prediction=4))),
        "field 'prediction'",
    ),
    "null id": (
        lambda c: c.score("ddi", c.jsonl("p", _with(c.right("ddi", "label"), 1, id=None))),
        "field 'id'",
    ),
    "list where a line should be an object": (
        lambda c: c.score("ddi", c.jsonl("p", [[1, 2], *c.right("ddi", "label")])),
        "object",
    ),
    "gold label is a list": (
        lambda c: c.score(
            "ddi",
            c.jsonl("p", c.right("ddi", "label")),
            gold=c.jsonl("g", _with(read_jsonl(c.prepared["ddi"]), 0, label=["DDI-int"])),
        ),
        "field 'label'",
    ),  # fmt: skip
    "empty gold file": (
        lambda c: c.score("ddi", c.jsonl("p", c.right("ddi", "label")), gold=c.jsonl("g", [])),
        "holds no items",
    ),
    "parse_ok as the string 'false'": (
        lambda c: c.score("ddi", c.jsonl("p", _with(c.right("ddi", "label"), 0, parse_ok="false"))),
        "field 'parse_ok'",
    ),  # fmt: skip
    "predictions not JSON": (
        lambda c: c.score(
            "ddi", str((c.tmp / "x.txt").write_text("id,label\n") and c.tmp / "x.txt")
        ),
        "not valid JSON",
    ),
    "missing predictions file": (lambda c: c.score("ddi", str(c.tmp / "nope.jsonl")), "not found"),
    "unknown dataset": (lambda c: c.score("ddx", c.jsonl("p", []), gold=c.jsonl("g", [])), "ddx"),
    "aggregate --out is one of its inputs": (
        lambda c: ["aggregate", "--out", c.jsonl("t", [{}]), str(c.tmp / "t")],
        "is the input #1 file",
    ),
    # config
    "group_size 0": (lambda c: _plan_with_group(c, 0), "group_size"),
    "group_size 100000": (lambda c: _plan_with_group(c, 100000), "group_size"),
    "group_size wider than the model (plan)": (
        lambda c: _plan_with_group(c, 1024),
        "576 input columns",
    ),
    "duplicate YAML keys": (
        lambda c: [
            "plan",
            "--config",
            c.config((REPO / "config/config.yaml").read_text() + "\nseed: 1\n"),
        ],
        "duplicate key",
    ),  # fmt: skip
    "doctor on a YAML syntax error": (
        lambda c: ["doctor", "--config", c.config("models: {a: [\n")],
        "YAML syntax error",
    ),
    "doctor on a missing config": (
        lambda c: ["doctor", "--config", str(c.tmp / "none.yaml")],
        "not found",
    ),
    "config that is a list": (
        lambda c: ["plan", "--config", c.config("- a\n- b\n")],
        "a config is a mapping",
    ),
    "revision main under --strict-revisions": (
        lambda c: [
            "fetch-model",
            "--model",
            "m",
            "--spec",
            json.dumps({"source": "hf", "id": "o/m", "revision": "main"}),
            "--out",
            str(c.tmp / "m"),
            "--strict-revisions",
        ],
        "40-character",
    ),  # fmt: skip
    "model spec not an object": (
        lambda c: ["fetch-model", "--model", "m", "--spec", "[1]", "--out", str(c.tmp / "m")],
        "JSON object",
    ),
    # cache
    "cache clear --model-key ../victim": (
        lambda c: ["cache", "clear", "--dir", c.cache(), "--model-key", "../victim"],
        "is not a cache",
    ),
    "cache clear --model-key ''": (
        lambda c: ["cache", "clear", "--dir", c.cache(), "--model-key", ""],
        "is not a cache",
    ),
    "cache clear on a missing folder": (
        lambda c: ["cache", "clear", "--dir", str(c.tmp / "nocache")],
        "no cache folder",
    ),
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    for name in ("hoc", "chemprot"):
        rel = get_dataset(name).files["test"].path
        for kind in ("full", "cut", "trickle", "fail"):
            (root / kind / rel).parent.mkdir(parents=True, exist_ok=True)
    with misbehaving_server(root) as srv:
        srv.trickle_s = 0.3
        yield srv


@pytest.mark.parametrize("name", list(CASES))
def test_no_bad_input_ends_in_a_traceback(name, tmp_path, demo_prepared, served, capsys):
    build, expected = CASES[name]
    try:
        code = cli.main(build(Ctx(tmp_path, demo_prepared, served.url)))
    except SystemExit as exit_:  # argparse: a bad option value, exit code 2
        code = exit_.code
    out = capsys.readouterr()
    err = out.err.strip()
    assert code in (1, 2), (name, err)
    assert "Traceback" not in out.err + out.out, name
    assert len(err.splitlines()) == 1 and err.startswith("biomedquant "), (name, err)
    assert expected in err, (name, err)
    assert "s3cret" not in err


def test_a_corrupt_cache_file_is_a_warning_not_a_failure(tmp_path, capsys, caplog):
    folder = Path(Ctx(tmp_path, {}, "").cache())
    (folder / f"{KEY}.sqlite").write_bytes(b"\x00garbage" * 512)
    assert cli.main(["cache", "info", "--dir", str(folder)]) == 0
    assert "Traceback" not in capsys.readouterr().err
    assert f"generation cache {folder / KEY}.sqlite is unreadable" in caplog.text


def test_an_unexpected_error_says_where_to_report_and_hides_the_traceback(monkeypatch, capsys):
    def broken(args):
        raise TypeError("unsupported operand")

    monkeypatch.setattr(cli.datasets, "_cmd_datasets", broken)
    assert cli.main(["datasets"]) == 70
    err = capsys.readouterr().err
    assert err.startswith("biomedquant datasets: internal error: TypeError: unsupported operand;")
    assert "please report it" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert cli.main(["-v", "datasets"]) == 70
    assert "Traceback" in capsys.readouterr().err  # kept for the report, with -v


def test_a_resample_count_the_machine_cannot_hold_is_refused_with_the_memory_needed(
    demo_prepared, tmp_path, capsys, monkeypatch
):
    """``--resamples 1000000000`` ran out of memory after 30 s with an internal error."""
    from biomedquant.cli import main
    from biomedquant.common.files import read_jsonl, write_jsonl
    from biomedquant.evaluation.stats import bootstrap

    gold = demo_prepared["ddi"]
    rows = [{"id": r["id"], "prediction": r["label"]} for r in read_jsonl(gold)]
    write_jsonl(tmp_path / "p.jsonl", rows)
    monkeypatch.setattr(bootstrap, "available_memory_bytes", lambda: 8 * 10**9)
    args = ["score", "--dataset", "ddi", "--gold", str(gold), "--predictions",
            str(tmp_path / "p.jsonl"), "--out", str(tmp_path / "s.json")]  # fmt: skip
    assert main([*args, "--resamples", "1000000000"]) == 1
    err = capsys.readouterr().err
    assert "--resamples 1000000000: the bootstrap of" in err and "GB free" in err
    # 17 statistics x 24 bytes + 160 per resample; 80% of 8 GB
    assert "568.0 GB" in err and "use at most 11,267,605 resamples" in err
    assert not (tmp_path / "s.json").exists()
    assert main([*args, "--resamples", "200"]) == 0


def test_version_and_help_speak_to_the_user(capsys):
    """`--version` names the package's version; the top-level help is plain text (no Sphinx
    markup from a module docstring)."""
    from biomedquant import __version__
    from biomedquant.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"biomedquant {__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "GPU memory" in help_text and ":mod:" not in help_text
    # the user's commands first, in a study's order; the workflow's steps named apart
    from biomedquant.cli import USER_COMMANDS, build_parser

    listed = [
        line.split()[0]
        for line in help_text.split("COMMAND\n")[1].split("\n\n")[0].splitlines()
        if line.startswith("    ") and not line.startswith("     ")
    ]
    assert listed == list(USER_COMMANDS)
    steps = help_text.split("workflow steps")[1]
    assert "report-table" in steps and "memory-table" in steps and "plan," not in steps
    every = set(build_parser()._subparsers._group_actions[0].choices)
    assert set(USER_COMMANDS) < every  # the steps still run
    # options show their defaults, not "None"
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    cache_help = capsys.readouterr().out
    assert "(default: resources/generation_cache)" in cache_help and "None" not in cache_help


def test_every_option_of_every_command_says_what_it_is():
    import argparse

    from biomedquant.cli import build_parser
    from biomedquant.cli.docs_reference import _subparsers

    silent = [
        (name, action.option_strings or action.dest)
        for name, sub in _subparsers(build_parser())
        for action in sub._actions
        if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
        and not action.help
    ]
    assert silent == []
