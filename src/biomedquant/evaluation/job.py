"""The CPU work after inference, as one job: parse, score and compare every prompting method.

A study plans one inference job per model x method (the GPU unit of work: one model load for
every dataset and prompting method; resume, cache and reruns stay per run), and the work that
follows is seconds per run: reading the raw outputs (:mod:`biomedquant.evaluation.parsing`),
scoring them (:func:`biomedquant.evaluation.scoring.score_run`) and comparing them with the
baseline on the same items (:func:`biomedquant.evaluation.scoring.compare_runs`). Planning one
job each for those would triple the number of jobs Snakemake has to plan, so one job per model x
method does all of it, for every dataset and prompting method, and writes the same per-run files
(``results/predictions``, ``results/scores``, ``results/comparisons``) that separate jobs would.

Within a run the steps hand each other records in memory (:func:`evaluate_run`): the parsed
predictions go to scoring and comparing as :class:`~biomedquant.common.files.JsonLines`, decoded
from the text the predictions file gets, so they equal what a reader of that file sees (a tuple
is a list, as it is on disk, and the hash is the file's); the run's files are written once, at
its end. The per-file commands (``parse``, ``score``, ``compare``) read files into the same
functions.

The trade-off: new raw outputs of one run re-evaluate its model x method, a minute or two of CPU
for a full study's test sets; a parser or scoring change never reruns inference.

Each group ends by writing its manifest (:func:`write_manifest`): the files it wrote, run by run,
and the inference run records they came from. The study-wide tables read the manifests, one
per model x method, rather than naming every per-run file: for the planner that is a hundred
inputs instead of tens of thousands, and the manifest is rewritten whenever its group reruns,
so the tables still follow every change.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import logging
import re
from pathlib import Path
from typing import Any

from biomedquant.common.files import JsonLines, read_json, write_json
from biomedquant.evaluation.defaults import BOOTSTRAP_RESAMPLES, CI_LEVEL, COMPARISON_RESAMPLES
from biomedquant.evaluation.parsing import parse_records
from biomedquant.evaluation.scoring import compare_runs, score_run

log = logging.getLogger(__name__)

# What a group names once, and what each of its runs (one dataset x prompting method) names.
REQUIRED = ("model", "method", "runs")
RUN_REQUIRED = ("dataset", "prompt", "gold", "generations", "predictions", "scores")
COMPARED = ("baseline_predictions", "comparisons")
NOISE_FLOOR = ("noise_floor_generations", "noise_floor_predictions", "noise_floor_comparisons")
# What a manifest lists per run, for the study-wide tables (the run record: the inference
# job's, written beside the raw outputs; optional for a group evaluated by hand).
MANIFEST_KEYS = (
    "gold",
    "predictions",
    "scores",
    "comparisons",
    "noise_floor_comparisons",
    "run_record",
)


# An import statement at the start of a line, at any indentation (inside functions too); a
# parenthesised name list may span lines.
_IMPORT_LINE = re.compile(
    r"^[ \t]*(?:from[ \t]+[\w.]+[ \t]+import[ \t]*(?:\([^)]*\)|[^\n]*)|import[ \t]+[^\n]*)",
    re.MULTILINE,
)


def _import_nodes(text: str) -> list[ast.Import | ast.ImportFrom]:
    """The import statements of a module's source. Only the lines that start like one are
    parsed (the whole module would cost the planner a tenth of a second at every start); a
    line that only looks like one (in a docstring) is skipped when it does not parse, or
    counts a module more, which can only make the fingerprint stricter."""
    nodes: list[ast.Import | ast.ImportFrom] = []
    for match in _IMPORT_LINE.finditer(text):
        try:
            tree = ast.parse(match.group(0).strip())
        except SyntaxError:
            continue
        nodes += [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    return nodes


def package_import_closure(root: str, package: str = "biomedquant") -> tuple[str, ...]:
    """Every module of ``package`` that ``root`` imports, directly or through another one,
    read from the source files' import statements (those inside functions included), so a
    module that starts to matter is covered the moment it is imported: no list to keep.
    Nothing is imported to find them."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"evaluation code: package {package} not found")
    top = Path(next(iter(spec.submodule_search_locations)))

    def source(name: str) -> Path | None:
        parts = name.split(".")[1:]
        candidates = [top.joinpath(*parts, "__init__.py")]
        if parts:
            candidates.append(top.joinpath(*parts[:-1], f"{parts[-1]}.py"))
        return next((path for path in candidates if path.is_file()), None)

    seen: set[str] = set()
    todo = [root]
    while todo:
        name = todo.pop()
        path = source(name) if name not in seen else None
        if path is None:
            continue
        seen.add(name)
        is_package = path.name == "__init__.py"
        for node in _import_nodes(path.read_text(encoding="utf-8")):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: against this module's package
                    parts = name.split(".")
                    parts = parts[: len(parts) - node.level + is_package]
                    base = ".".join([*parts, *([base] if base else [])])
                # ``from pkg import mod`` imports a submodule where ``pkg.mod`` is one
                todo += [base, *(f"{base}.{alias.name}" for alias in node.names)]
        todo = [m for m in todo if m == package or m.startswith(f"{package}.")]
    return tuple(sorted(seen))


def evaluation_code_fingerprint(modules: tuple[str, ...] | None = None) -> str:
    """SHA-256 over the source files of ``modules`` (default: the import closure of this
    module within the package, everything an evaluate job runs). It is a parameter of the
    evaluate rules, so Snakemake re-evaluates (and only re-evaluates) when that code changes.
    A package named in ``modules`` counts with all its ``.py`` files."""
    if modules is None:
        modules = package_import_closure(__name__)
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ValueError(f"evaluation code: module {name} not found")
        origin = Path(spec.origin)
        files = sorted(origin.parent.glob("*.py")) if origin.name == "__init__.py" else [origin]
        for path in files:
            digest.update(f"{name}:{path.name}\n".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def check_settings(settings: dict[str, Any]) -> None:
    """Refuse a settings object that misses a key, or a run that misses one of its files."""
    missing = [k for k in REQUIRED if k not in settings]
    if missing:
        raise ValueError(f"evaluation settings lack {', '.join(missing)}")
    for i, run in enumerate(settings["runs"]):
        needed = list(RUN_REQUIRED)
        if settings.get("baseline"):
            needed += COMPARED
        if settings.get("noise_floor_label"):
            needed += NOISE_FLOOR
        lacking = [k for k in needed if not run.get(k)]
        if lacking:
            raise ValueError(f"evaluation settings: run {i} ({run}) lacks {', '.join(lacking)}")


def parse_run(
    generations: JsonLines, gold: JsonLines, dataset: str, prompt: str, out_path: str | Path
) -> tuple[JsonLines, dict[str, Any]]:
    """Parsed predictions of one run's raw outputs, the same items as the gold file in order,
    as ``out_path`` will hold them, and the parse summary (nothing is written).

    Raw outputs of items the gold file does not hold, or gold items without an output, mean
    the two files belong to different runs: an error naming both, never a partial score.
    """
    gold_ids = [str(r["id"]) for r in gold.records]
    gen_ids = [str(r.get("id")) for r in generations.records]
    if sorted(gold_ids) != sorted(gen_ids):
        extra = sorted(set(gen_ids) - set(gold_ids))[:3]
        lacking = sorted(set(gold_ids) - set(gen_ids))[:3]
        raise ValueError(
            f"{generations.where} does not hold the items of {gold.where}"
            f" (not in gold: {extra}; without output: {lacking})"
        )
    items = {str(rec["id"]): rec for rec in gold.records}
    parsed, summary = parse_records(
        generations.records, items, dataset, prompt, generations.where, gold.where
    )
    return JsonLines.of(parsed, out_path), summary


def parse_generations(
    generations_path: str | Path,
    gold_path: str | Path,
    dataset: str,
    prompt: str,
    out_path: str | Path,
) -> dict[str, Any]:
    """:func:`parse_run` on a generations file, written to ``out_path``; returns the parse
    summary."""
    parsed, summary = parse_run(
        JsonLines.read(generations_path), JsonLines.read(gold_path), dataset, prompt, out_path
    )
    parsed.write(out_path)
    return summary


def evaluate_run(
    settings: dict[str, Any], run: dict[str, Any], boot: dict[str, Any], compared: dict[str, Any]
) -> dict[str, Any]:
    """One run of a group: parse, score and compare in memory (each step hands the next
    its records), then write the run's files; returns the run's summary."""
    model, method = settings["model"], settings["method"]
    dataset, prompt = run["dataset"], run["prompt"]
    names = {"dataset": dataset, "prompt": prompt, "model": model}
    gold = JsonLines.read(run["gold"])
    parsed, summary = parse_run(
        JsonLines.read(run["generations"]), gold, dataset, prompt, run["predictions"]
    )
    outputs: list[tuple[str, JsonLines | dict[str, Any]]] = [(run["predictions"], parsed)]
    score = score_run(gold=gold, predictions=parsed, method=method, **names, **boot)
    outputs.append((run["scores"], score))
    if settings.get("baseline"):
        comparison = compare_runs(
            gold=gold,
            baseline_predictions=JsonLines.read(run["baseline_predictions"]),
            predictions=parsed,
            method=method,
            baseline=settings["baseline"],
            **names,
            **compared,
        )
        outputs.append((run["comparisons"], comparison))
    if settings.get("noise_floor_label"):
        rerun, _ = parse_run(
            JsonLines.read(run["noise_floor_generations"]),
            gold,
            dataset,
            prompt,
            run["noise_floor_predictions"],
        )
        floor = compare_runs(
            gold=gold,
            baseline_predictions=parsed,
            predictions=rerun,
            method=settings["noise_floor_label"],
            baseline=method,
            noise_floor=True,
            **names,
            **compared,
        )
        outputs.append((run["noise_floor_predictions"], rerun))
        outputs.append((run["noise_floor_comparisons"], floor))
    for path, content in outputs:
        if isinstance(content, JsonLines):
            content.write(path)
        else:
            write_json(path, content)
    log.info(
        "%s %s %s %s: %d items, %d unparsable",
        model,
        method,
        dataset,
        prompt,
        summary["n_items"],
        summary["n_unparsable"],
    )
    return {"parse": summary, "n": score["n"]}


def evaluate_group(settings: dict[str, Any]) -> dict[str, Any]:
    """Parse, score and (against the baseline, and the noise floor where set) compare every
    run of one model x method (:func:`evaluate_run`); returns a summary per run
    (``dataset/prompt``).

    ``settings`` holds the names (model, method; ``baseline`` for a quantized method,
    ``noise_floor_label`` for the baseline with a noise floor), the bootstrap settings
    (resamples, level, seed; ``comparison_resamples`` for the paired comparisons) and the
    ``runs``: per dataset x prompting method, the gold file,
    the raw ``generations`` to read, the ``predictions`` and ``scores`` to write, and where
    compared the baseline's parsed predictions and the ``comparisons`` to write (the noise
    floor: its generations, its parsed predictions and its comparisons with the baseline).
    """
    if settings.get("manifest"):
        # a rerun: the old manifest must not outlive outputs this run may fail to rewrite
        Path(settings["manifest"]).unlink(missing_ok=True)
    check_settings(settings)
    boot = {
        "resamples": int(settings.get("resamples", BOOTSTRAP_RESAMPLES)),
        "level": float(settings.get("level", CI_LEVEL)),
        "seed": int(settings.get("seed", 0)),
    }
    # the comparisons' resampled differences are what the verdicts' one-sided bounds read
    compared = {
        **boot,
        "resamples": int(settings.get("comparison_resamples", COMPARISON_RESAMPLES)),
    }
    summary = {
        f"{run['dataset']}/{run['prompt']}": evaluate_run(settings, run, boot, compared)
        for run in settings["runs"]
    }
    if settings.get("manifest"):
        write_manifest(settings, summary)
    return summary


def write_manifest(settings: dict[str, Any], summary: dict[str, Any]) -> None:
    """The group's manifest: per run, the files the tables read (written last, atomically, so
    a manifest exists only for a group whose every output was written)."""
    runs = [
        {
            "dataset": r["dataset"],
            "prompt": r["prompt"],
            **{k: r[k] for k in MANIFEST_KEYS if r.get(k)},
        }
        for r in settings["runs"]
    ]
    write_json(
        settings["manifest"],
        {
            "model": settings["model"],
            "method": settings["method"],
            "runs": runs,
            "summary": summary,
        },
    )


def manifest_files(manifests: list[str | Path], key: str) -> list[str]:
    """The files listed under ``key`` (one of MANIFEST_KEYS) by the manifests, in their order
    (manifest by manifest, then run by run): the order the tables' rows come in."""
    if key not in MANIFEST_KEYS:
        raise ValueError(f"manifest key {key!r} is not one of {', '.join(MANIFEST_KEYS)}")
    files = []
    for path in manifests:
        manifest = read_json(path)
        runs = manifest.get("runs") if isinstance(manifest, dict) else None
        if not isinstance(runs, list) or not all(isinstance(run, dict) for run in runs):
            raise ValueError(f"{path}: not an evaluation manifest (no list of runs)")
        listed = [run[key] for run in runs if run.get(key)]
        if not all(isinstance(f, str) for f in listed):
            raise ValueError(f"{path}: an entry under {key!r} is not a file path")
        missing = [f for f in listed if not Path(f).exists()]
        if missing:
            raise ValueError(
                f"{path} lists {len(missing)} missing file(s), e.g. {missing[0]}: rerun its"
                " evaluate job (remove the manifest) or the inference that writes them"
            )
        files += listed
    return files


# Which listed files each study-wide table gathers, in row order.
TABLE_KEYS = {
    "scores": ("scores",),
    # the noise floor's comparisons fill the noise_floor_* columns of the methods' rows
    "comparisons": ("comparisons", "noise_floor_comparisons"),
    "comparisons_by_label": ("comparisons",),
}


def table_inputs(kind: str, manifests: list[str | Path]) -> list[str]:
    """The per-run files the ``kind`` table (scores, comparisons, comparisons_by_label) reads."""
    if kind not in TABLE_KEYS:
        raise ValueError(f"table kind {kind!r} is not one of {', '.join(TABLE_KEYS)}")
    return [f for key in TABLE_KEYS[kind] for f in manifest_files(manifests, key)]
