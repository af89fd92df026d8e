"""What to deploy on the hardware a lab has: for each model, and over all models, the
best-scoring model x method that runs and fits there and is shown non-inferior to its own
16-bit baseline (``results/tables/deployment_choice.csv``; ``biomedquant recommend --gpu-gb 40``).

The question a lab asks is not "which method saves most" but "I have one 40 GB A100 (or only
CPUs): what do I run?". Decisions, and why:

* Shown non-inferior means what the recommendation's Holm procedure passed
  (:mod:`biomedquant.analysis.recommendation`, its ``shown_non_inferior``), plus the baseline
  itself. The procedure controls the family-wise error of all its passed claims together, so
  choosing any of them by score keeps every claim's level; choosing among all methods
  non-inferior on their own tests would not. Controls are never options.
* Among those, the best-scoring: the mean of the primary metric over the model's tasks under
  the prompting methods the recommendation's claim is for (each task the mean over its
  datasets, as the verdicts pool them). Ties go to less memory. Over all models, scores are
  compared on the tasks and prompts every candidate has.
* Runs there: a kind that needs FP8 units is ruled out below compute capability 8.9 (A100s),
  and on a CPU-only machine the kinds that need CUDA (AWQ, FP8) are
  (:attr:`biomedquant.methods.kinds.MethodKind.runs_on_cpu`).
* Fits: the one fit rule of :mod:`biomedquant.common.gpus` (90% of each GPU; several GPUs under
tensor
  parallelism, so "2 x 80 GB" is an answer). GPU memory is the recommendation's (measured peak
  where every method of the model has one, else the estimate); on a CPU, the measured peak
  resident memory where every method of the model has one, else the estimate.
* When nothing shown non-inferior fits, the best-scoring method that fits is named with
  ``status`` saying plainly that it is not shown non-inferior, and its verdicts beside it:
  a lab may still take it, knowing what it risks. When nothing fits at all, the row says so
  and names the smallest memory any method needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.analysis.tables import deployment_memory, numeric, read_memory, read_recommendation
from biomedquant.common.files import write_csv
from biomedquant.common.gpus import Hardware, capability_text
from biomedquant.methods.kinds import METHOD_KINDS, model_folder

if TYPE_CHECKING:
    import pandas as pd

ALL_MODELS = "all models"
DEPLOYMENT_COLUMNS = (
    "hardware",
    "scope",
    "model",
    "method",
    "status",
    "score_points",
    "baseline_score_points",
    "memory_gb",
    "memory_source",
    "gpus",
    "verdicts",
    "deploy",
    "excluded",
)
# Hardware by name: a device of biomedquant.planning.throughput.DEVICES, "N x" of one, or "cpu".
HARDWARE_NAME = re.compile(r"^(?:(?P<n>\d+)\s*x\s*)?(?P<device>[a-z0-9_]+)$", re.IGNORECASE)


def hardware_by_name(text: str) -> Hardware:
    """``a100_40g``, ``2xh100`` or ``cpu`` as :class:`~biomedquant.common.gpus.Hardware` (sizes
    and capabilities from the device registry); an error naming the known devices otherwise."""
    from biomedquant.planning.throughput import DEVICES

    m = HARDWARE_NAME.match(str(text).strip())
    if m and m["device"].lower() == "cpu" and not m["n"]:
        return Hardware(None, name="CPU")
    if not m or m["device"].lower() not in DEVICES:
        known = ", ".join(DEVICES)
        raise ValueError(f"hardware {text!r}: want a device ({known}), 'N x <device>' or 'cpu'")
    device = DEVICES[m["device"].lower()]
    n = int(m["n"] or 1)
    label = f"{n} x {device.title}" if n > 1 else device.title
    return Hardware(device.memory_gib, n, device.compute_capability, name=label)


def why_not_runnable(kind_name: str, hardware: Hardware) -> str:
    """Why a method kind cannot run on ``hardware`` ("" when it can)."""
    kind = METHOD_KINDS[kind_name]
    if hardware.cpu:
        return "" if kind.runs_on_cpu else "needs a CUDA GPU"
    need = kind.min_compute_capability
    have = hardware.compute_capability
    if need is not None and have is not None and have < need:
        return (
            f"needs compute capability {capability_text(need)}+ (this GPU: {capability_text(have)})"
        )
    return ""


@dataclass(frozen=True)
class _Option:
    """One model x method as a deployment candidate."""

    model: str
    method: str
    kind: str
    scores: Mapping[tuple[str, str], float]  # (task, prompt) -> score in points
    gpu_gb: float
    gpu_source: str
    cpu_gb: float
    cpu_source: str
    shown: bool  # the baseline, or passed the recommendation's Holm procedure
    verdicts: str
    baseline: bool = False

    def memory(self, hardware: Hardware) -> tuple[float, str]:
        return (self.cpu_gb, self.cpu_source) if hardware.cpu else (self.gpu_gb, self.gpu_source)

    def score(self, tests: Iterable[tuple[str, str]] | None = None) -> float:
        keys = list(self.scores) if tests is None else list(tests)
        vals = [self.scores.get(k, math.nan) for k in keys]
        return sum(vals) / len(vals) if vals else math.nan


def _cpu_memory(memory: pd.DataFrame) -> pd.DataFrame:
    """Host memory per model x method: the measured peak resident memory where every method of
    the model has one, else the fit estimate's total (same rule as the GPU's: one source per
    model, so its methods are ranked on one quantity)."""
    out = memory.copy()
    measured = numeric(out, "peak_host_rss_gb")
    has = (measured > 0).groupby(out["model"]).transform("all").astype(bool)
    out["cpu_gb"] = measured.where(has, numeric(out, "est_total_gb"))
    out["cpu_source"] = ["measured" if h else "estimated" for h in has]
    return out


def _scores(g: pd.DataFrame, column: str) -> dict[tuple[str, str], float]:
    values = numeric(g, column)
    return {
        (str(t), str(p)): float(v) for t, p, v in zip(g["task"], g["prompt"], values, strict=True)
    }


def _verdict_text(g: pd.DataFrame) -> str:
    counts = g["verdict"].value_counts()
    return ", ".join(f"{n} {v}" for v, n in counts.items())


def options(rec: pd.DataFrame, evidence: pd.DataFrame, memory: pd.DataFrame) -> list[_Option]:
    """Every model x method with complete evidence (the baseline included) as a candidate."""
    if "kind" not in memory:
        raise ValueError("the memory table has no kind column (write it with memory-table)")
    mem = _cpu_memory(memory if "memory_gb" in memory else deployment_memory(memory))
    mem_of = {(str(r.model), str(r.method)): r for r in mem.itertuples()}
    out = []
    for r in rec.itertuples():
        model, baseline = str(r.model), str(r.baseline)
        ev = evidence[evidence["model"].astype(str) == model]
        # the candidates under the prompting methods the claim is for (controls never are)
        if "role" in ev:
            ev = ev[ev["role"].astype(str) == "candidate"]
        tests = sorted(set(zip(ev["task"], ev["prompt"], strict=True)))
        shown = set(filter(None, str(r.shown_non_inferior or "").split(";")))
        shown = {s for s in shown if s != "nan"} | {baseline}
        base = ev.drop_duplicates(["task", "prompt"])
        per_method = {baseline: (_scores(base, "baseline_score_points"), "the reference")}
        for method, g in ev.groupby("method", sort=False):
            scores = _scores(g, "score_points")
            if set(scores) == set(tests):  # a method missing a test is not a candidate
                per_method[str(method)] = (scores, _verdict_text(g))
        for method, (scores, verdicts) in per_method.items():
            m = mem_of.get((model, method))
            if m is None:
                continue
            out.append(
                _Option(
                    model,
                    method,
                    str(m.kind),
                    scores,
                    float(m.memory_gb),
                    str(m.memory_source),
                    float(m.cpu_gb),
                    str(m.cpu_source),
                    method in shown,
                    verdicts,
                    baseline=method == baseline,
                )
            )
    return out


def _pick(cands: Sequence[_Option], hardware: Hardware) -> tuple[_Option | None, str]:
    """The best-scoring candidate that fits (ties: less memory), shown non-inferior first,
    and its status."""
    shown = [c for c in cands if c.shown]
    pool, status = (shown, "shown non-inferior") if shown else (cands, "")
    if not pool:
        return None, ""
    common = set.intersection(*(set(c.scores) for c in pool))
    best = max(pool, key=lambda c: (_nan_low(c.score(common)), -c.memory(hardware)[0]))
    if not status:
        status = "NOT shown non-inferior to its baseline: the best-scoring that fits"
    elif best.baseline:
        status = "the baseline itself"
    return best, status


def _nan_low(v: float) -> float:
    return -math.inf if math.isnan(v) else v


def choose(
    opts: Sequence[_Option], hardware: Hardware, *, model_folders: Mapping[tuple[str, str], str]
) -> list[dict[str, Any]]:
    """The deployment rows of one piece of hardware: one per model, then one over all models."""
    rows = []
    picks = []
    by_model: dict[str, list[_Option]] = {}
    for o in opts:
        by_model.setdefault(o.model, []).append(o)
    for model, group in by_model.items():
        fitting, excluded = [], []
        for o in group:
            why = why_not_runnable(o.kind, hardware)
            gb, _ = o.memory(hardware)
            if not why and (math.isnan(gb) or hardware.gpus_used(gb) is None):
                why = "memory unknown" if math.isnan(gb) else f"needs {gb:.3g} GB"
            if why:
                excluded.append(f"{o.method}: {why}")
            else:
                fitting.append(o)
        best, status = _pick(fitting, hardware)
        if best is not None:
            picks.append((best, status))
        rows.append(_row(hardware, model, best, status, excluded, group, model_folders))
    shown = [b for b, s in picks if b.shown]
    pool = shown or [b for b, _ in picks]
    best, status = _pick(pool, hardware)
    rows.append(_row(hardware, ALL_MODELS, best, status, [], list(opts), model_folders))
    return rows


def _row(
    hardware: Hardware,
    scope: str,
    best: _Option | None,
    status: str,
    excluded: Sequence[str],
    group: Sequence[_Option],
    model_folders: Mapping[tuple[str, str], str],
) -> dict[str, Any]:
    row: dict[str, Any] = dict.fromkeys(DEPLOYMENT_COLUMNS)
    row.update(hardware=hardware.label, scope=scope, excluded="; ".join(excluded))
    if best is None:
        sizes = [o.memory(hardware)[0] for o in group if not math.isnan(o.memory(hardware)[0])]
        least = f": the smallest needs {min(sizes):.3g} GB" if sizes else ""
        row["status"] = f"nothing runs here{least}"
        return row
    gb, source = best.memory(hardware)
    base = next((o for o in group if o.model == best.model and o.baseline), None)
    row.update(
        model=best.model,
        method=best.method,
        status=status,
        score_points=round(best.score(), 2),
        baseline_score_points=None if base is None else round(base.score(), 2),
        memory_gb=round(gb, 3),
        memory_source=source,
        gpus=hardware.gpus_used(gb),
        verdicts=best.verdicts,
        deploy=model_folders.get((best.model, best.method), ""),
    )
    return row


def _deploy_text(model: str, method_name: str, method: dict[str, Any]) -> str:
    folder = model_folder(model, method_name, method)
    kind = METHOD_KINDS[method["kind"]]
    return f"{folder} (quantized while loading: {kind.name})" if kind.load_time else folder


def deployment_rows(
    rec: pd.DataFrame,
    evidence: pd.DataFrame,
    memory: pd.DataFrame,
    hardware: Sequence[Hardware],
    methods: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """The deployment answer for each piece of ``hardware``: one row per model and one over all
    models (see the module docstring). ``methods``: the config's method entries, for the file
    to deploy (without them, the folder is named by the memory table's kinds)."""
    opts = options(rec, evidence, memory)
    kinds = {(o.model, o.method): o.kind for o in opts}
    folders = {
        key: _deploy_text(key[0], key[1], dict((methods or {}).get(key[1]) or {"kind": kind}))
        for key, kind in kinds.items()
    }
    return [row for hw in hardware for row in choose(opts, hw, model_folders=folders)]


def write_deployment(
    recommendation_path: str | Path,
    evidence_path: str | Path,
    memory_path: str | Path,
    hardware: Sequence[Hardware],
    out_path: str | Path | None = None,
    methods: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Read the recommendation, its evidence and the memory table; write (when ``out_path``)
    and return the deployment answer."""
    rec, evidence = read_recommendation(recommendation_path, evidence_path)
    rows = deployment_rows(rec, evidence, read_memory(memory_path), hardware, methods)
    if out_path:
        write_csv(out_path, DEPLOYMENT_COLUMNS, rows)
    return rows


def deployment_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The answer as text for a terminal: per hardware, the pick over all models first."""
    lines = []
    for hw in dict.fromkeys(r["hardware"] for r in rows):
        lines.append(f"{hw}:")
        group = [r for r in rows if r["hardware"] == hw]
        for r in sorted(group, key=lambda r: r["scope"] != ALL_MODELS):
            if not r.get("method"):
                lines.append(f"  {r['scope']}: {r['status']}")
                continue
            gpus = r.get("gpus")
            on = "" if gpus in (None, 0) else f" on {gpus} GPU" + ("s" if gpus > 1 else "")
            name = r["method"] if r["scope"] != ALL_MODELS else f"{r['model']} x {r['method']}"
            lines.append(
                f"  {r['scope']}: {name}, score {r['score_points']:.1f}"
                f" (16-bit {r['baseline_score_points']:.1f}), {r['memory_gb']:.3g} GB"
                f" {r['memory_source']}{on}; {r['status']}; deploy {r['deploy']}"
            )
    return lines
