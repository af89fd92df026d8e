"""Which quantized version of a model a lab may deploy: for each model, the least-memory
candidate shown non-inferior to the unquantized baseline on every task, under the prompting
method(s) the lab will deploy, with the family-wise error over all candidates at ``alpha``.

Decisions, and why:

* Verdicts, not point estimates. A rule on point estimates ("every change >= -1 point") fails
  a method with no true loss most of the time once there are many checks, and cannot tell "no
  loss" from "too little data to know". Each (task, prompt) gets a non-inferiority verdict
  instead (:mod:`biomedquant.evaluation.stats.verdicts`): ``non-inferior``, ``inferior``,
  ``inconclusive`` or ``insufficient evidence``, with its p-value.
* The claim is for the prompting methods the lab deploys (``deploy_prompts``; the study's
  first prompting method unless the config names others). A lab runs a model one way; a
  claim "under every prompting method of the study" would make a method with no loss fail
  20 chances (4 tasks x 5 prompts) and answer a question nobody deploys. Every other
  prompting method's verdicts stay in the evidence table, to read.
* Per candidate, intersection-union: "non-inferior on every task" holds only if each test
  passes, so the candidate's p-value is the largest of its tests' p-values, with no
  correction across its own tests (a correction there only makes a lossless method fail
  more often).
* Across candidates, Holm's step-down procedure at ``alpha``: the candidates' p-values are
  sorted, the i-th smallest of m is compared with ``alpha / (m - i + 1)``, and every
  candidate before the first failure is shown non-inferior. The family-wise error over all
  candidates (the chance that any candidate with a loss of at least the margin is shown
  non-inferior) stays at most ``alpha`` whatever their dependence, and every candidate can be
  reached: unlike a fixed sequence by memory, no candidate waits on another passing first,
  and memory, near-ties included, plays no part in what is tested.
* Controls are never candidates: round-to-nearest (a kind marked as a control) and any
  method the config marks ``control: true`` (the F16 GGUF run through llama.cpp, which
  separates the engine's change from the quantization) are measured and shown in the
  evidence, but they are neither tested for deployment nor able to block a candidate.
* Each candidate with a control (:func:`biomedquant.methods.kinds.control_pairs`: GPTQ's and
  AWQ's round-to-nearest at the same bits and group size, a GGUF method's GGUF control) has its
  control's change beside its own in every test of the evidence (``control_delta_points``) and
  the difference (``delta_vs_control_points``): for a GGUF method the control's change is the
  engine's share (llama.cpp against the transformers baseline) and the difference the
  quantization's; for GPTQ and AWQ a difference below 0 means the method lost to plain rounding.
* ``shown_non_inferior`` lists every candidate Holm's procedure passed; the recommendation is
  the one of least memory (ties: the config's order), and the deployment answer
  (:mod:`biomedquant.analysis.deployment`) may pick any of them that fits a lab's hardware,
  since the family-wise error covers all of these claims together.
* ``lowest_loss_bound_method`` ranks every candidate with complete evidence by the largest
  loss its tests leave open (the worst test's upper bound of the loss): a ranking to read
  beside the verdicts, never a verdict itself.
* A candidate without a comparison for some (task, prompt) the decision reads, or without a
  memory figure, is not tested: missing evidence is not evidence of no loss.
* Memory is the measured peak GPU allocation where a GPU run exists, else the fit estimator's
  total (``memory_source`` says which; see :func:`biomedquant.analysis.tables.deployment_memory`).
  Smallest GPU: the smallest common GPU (:data:`biomedquant.common.gpus.GPU_SIZES_GIB`, as
  marketed, which are GiB) that holds that memory, empty if none does.
* Units: changes, bounds and margins are in points, 1 point = 0.01 on the metric's 0-1 scale.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from biomedquant.analysis.tables import deployment_memory, read_memory
from biomedquant.common.files import read_json, write_csv
from biomedquant.common.gpus import smallest_gpu
from biomedquant.evaluation.stats.multiplicity import holm
from biomedquant.evaluation.stats.verdicts import (
    DEFAULT_ALPHA,
    TEST_COLUMNS,
    VERDICTS,
    task_tests,
)

if TYPE_CHECKING:
    import pandas as pd

EVIDENCE_COLUMNS = (
    *TEST_COLUMNS,
    "memory_gb",
    "memory_source",
    "role",
    "control",
    "control_delta_points",
    "delta_vs_control_points",
)
RECOMMENDATION_COLUMNS = (
    "model",
    "baseline",
    "prompts",
    "recommended",
    "verdict",
    "memory_gb",
    "memory_source",
    "smallest_gpu_gb",
    "baseline_memory_gb",
    "baseline_smallest_gpu_gb",
    "memory_saved_pct",
    "margin_points",
    "alpha",
    "procedure",
    "shown_non_inferior",
    "controls",
    "loss_upper_bound_points",
    "detectable_loss_points",
    "worst_task",
    "worst_prompt",
    "worst_delta_points",
    "worst_lower_bound_points",
    "lowest_loss_bound_method",
    "lowest_loss_bound_points",
    "not_tested",
    "evidence",
)


def _margin_text(margins: Mapping[str, float]) -> str:
    return "; ".join(f"{t} {m:g}" for t, m in sorted(margins.items()))


def _evidence_text(g: pd.DataFrame) -> str:
    parts = []
    for r in g.sort_values(["task", "prompt"]).itertuples():
        bound = "" if math.isnan(r.lower_bound_points) else f" (>= {r.lower_bound_points:+.1f})"
        parts.append(f"{r.task} {r.prompt} {r.delta_points:+.1f}{bound} {r.verdict}")
    return "; ".join(parts)


def _fmt_gb(gb: float) -> str:
    return "memory unknown" if gb is None or math.isnan(gb) else f"{gb:.3g} GB"


def _gpu(gb: float) -> int | None:
    return None if gb is None or math.isnan(gb) else smallest_gpu(gb)


def _outcome(g: pd.DataFrame) -> str:
    counts = g["verdict"].value_counts()
    return ", ".join(f"{counts[v]} {v}" for v in VERDICTS if v in counts)


def _worst(g: pd.DataFrame) -> pd.Series:
    return g.loc[g["lower_bound_points"].fillna(-math.inf).idxmin()]


def candidate_p_value(tests: pd.DataFrame) -> float:
    """The intersection-union p-value of "non-inferior on every one of ``tests``": the largest
    of their p-values (a test with insufficient evidence, or without a p-value, counts as 1)."""
    p = tests["p_noninferior"].astype(float).fillna(1.0)
    p = p.where(tests["verdict"] != "insufficient evidence", 1.0)
    return float(p.max()) if len(p) else 1.0


def holm_steps(
    p_values: Mapping[str, float], alpha: float
) -> tuple[list[str], list[tuple[str, str]]]:
    """Holm's step-down procedure at family-wise error ``alpha`` over the candidates'
    p-values (:func:`biomedquant.evaluation.stats.multiplicity.holm`): the candidates shown
    non-inferior, in the order tested, and per candidate in that order a line saying what
    happened. The i-th smallest of m p-values passes while it is at most
    ``alpha / (m - i + 1)``, which is exactly when its Holm-adjusted p-value is at most
    ``alpha``."""
    names = sorted(p_values, key=lambda k: p_values[k])
    adjusted = holm([p_values[n] for n in names]) if names else []
    passed: list[str] = []
    steps: list[tuple[str, str]] = []
    for name, adj in zip(names, adjusted, strict=True):
        p = p_values[name]
        if adj <= alpha:
            passed.append(name)
            steps.append((name, f"{name}: p {p:.3g}, Holm-adjusted {adj:.3g}: shown non-inferior"))
        else:
            steps.append((name, f"{name}: p {p:.3g}, Holm-adjusted {adj:.3g}: not shown"))
    return passed, steps


def recommend(
    comparisons: Sequence[Mapping[str, Any]],
    memory: pd.DataFrame,
    *,
    margin_points: float | None = None,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    deploy_prompts: Sequence[str] | None = None,
    controls: Collection[str] = (),
    control_of: Mapping[str, str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recommendation (one row per model) and its evidence (one verdict per model x
    method x task x prompt, controls and undeployed prompting methods included), from
    comparison records and the memory table (see the module docstring for the rule).

    ``deploy_prompts``: the prompting methods the claim must hold under (default: every
    prompting method in the comparisons); ``controls``: method names that are measured but
    never candidates; ``control_of``: each candidate's control, whose change the evidence
    sets beside the candidate's."""
    import pandas as pd

    task_margins = dict(task_margin_points or {})
    tests = task_tests(
        comparisons, margin_points=margin_points, task_margin_points=task_margins, alpha=alpha
    )
    if "memory_gb" not in memory:
        memory = deployment_memory(memory)
    mem = memory[["model", "method", "memory_gb", "memory_source"]].drop_duplicates(
        ["model", "method"]
    )
    mem = mem.astype({"model": str, "method": str})
    evidence = pd.DataFrame(tests, columns=list(TEST_COLUMNS))
    evidence = evidence.merge(mem, on=["model", "method"], how="left")
    control_set = set(controls)
    deployed = None if deploy_prompts is None else [str(p) for p in deploy_prompts]
    evidence["role"] = [
        "control"
        if m in control_set
        else ("candidate" if deployed is None or p in deployed else "not deployed")
        for m, p in zip(evidence["method"], evidence["prompt"], strict=True)
    ]
    delta = {(r.model, r.method, r.task, r.prompt): r.delta_points for r in evidence.itertuples()}
    pairs = dict(control_of or {})
    evidence["control"] = [pairs.get(m) for m in evidence["method"]]
    evidence["control_delta_points"] = [
        delta.get((r.model, r.control, r.task, r.prompt), math.nan) if r.control else math.nan
        for r in evidence.itertuples()
    ]
    evidence["delta_vs_control_points"] = (
        evidence["delta_points"] - evidence["control_delta_points"]
    )
    evidence = evidence[list(EVIDENCE_COLUMNS)]
    mem_of = {(r.model, r.method): (r.memory_gb, r.memory_source) for r in mem.itertuples()}

    rows: list[dict[str, Any]] = []
    for model, ev in evidence.groupby("model", sort=False):
        baseline = str(ev["baseline"].iloc[0])
        prompts = deployed if deployed is not None else sorted(set(ev["prompt"]))
        decide = ev[ev["prompt"].isin(prompts)]
        required = {(t, p) for t in set(ev["task"]) for p in prompts}
        base_gb, base_src = mem_of.get((model, baseline), (math.nan, "unknown"))
        margins = {t: m for t, m in zip(ev["task"], ev["margin_points"], strict=True)}
        tested: dict[str, tuple[float, int, pd.DataFrame]] = {}  # method -> (GB, order, tests)
        not_tested = []
        for order, (method, g) in enumerate(decide.groupby("method", sort=False)):
            if method in control_set:
                continue
            gb, _ = mem_of.get((model, method), (math.nan, "unknown"))
            missing = required - set(zip(g["task"], g["prompt"], strict=True))
            if missing:
                absent = ", ".join(f"{t} {p}" for t, p in sorted(missing))
                not_tested.append(f"{method}: no comparison for {absent}")
            elif gb is None or math.isnan(gb):
                not_tested.append(f"{method}: memory unknown")
            else:
                tested[method] = (gb, order, g)
        p_values = {m: candidate_p_value(g) for m, (_, _, g) in tested.items()}
        passed, steps = holm_steps(p_values, alpha)
        steps = [
            f"{line} ({_fmt_gb(tested[name][0])}; {_outcome(tested[name][2])})"
            for name, line in steps
        ]
        chosen_name = min(passed, key=lambda m: (tested[m][0], tested[m][1]), default=None)
        chosen = None if chosen_name is None else (tested[chosen_name][0], chosen_name)
        ranked = sorted(
            ((gb, name, g) for name, (gb, _, g) in tested.items()),
            key=lambda t: (_nan_last(t[2]["loss_upper_bound_points"].max()), t[0]),
        )
        # the evidence shown: the recommended candidate's, else the largest candidate's
        named = (
            (chosen[0], chosen[1], tested[chosen[1]][2])
            if chosen
            else max(ranked, key=lambda t: t[0], default=None)
        )
        gb, src = (chosen[0], mem_of[(model, chosen[1])][1]) if chosen else (base_gb, base_src)
        saved = (
            100 * (1 - gb / base_gb)
            if not (math.isnan(gb) or math.isnan(base_gb) or base_gb <= 0)
            else math.nan
        )
        worst = None if named is None else _worst(named[2])
        shown_controls = sorted(set(ev["method"]) & control_set)
        scope = ", ".join(prompts)
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "prompts": scope,
                "recommended": chosen[1] if chosen else baseline,
                "verdict": f"non-inferior on every task ({scope}), family-wise error {alpha:g}"
                if chosen
                else f"no candidate shown non-inferior on every task ({scope}): the baseline",
                "memory_gb": gb,
                "memory_source": src,
                "smallest_gpu_gb": _gpu(gb),
                "baseline_memory_gb": base_gb,
                "baseline_smallest_gpu_gb": _gpu(base_gb),
                "memory_saved_pct": saved,
                "margin_points": _margin_text(margins),
                "alpha": alpha,
                "procedure": f"Holm over {len(tested)} candidate"
                + ("s" if len(tested) != 1 else "")
                + (": " + "; ".join(steps) if steps else ""),
                "shown_non_inferior": ";".join(passed),
                "controls": ";".join(shown_controls),
                "loss_upper_bound_points": None
                if named is None
                else float(named[2]["loss_upper_bound_points"].max()),
                "detectable_loss_points": None
                if named is None
                else float(named[2]["detectable_loss_points"].max()),
                "worst_task": None if worst is None else worst["task"],
                "worst_prompt": None if worst is None else worst["prompt"],
                "worst_delta_points": None if worst is None else worst["delta_points"],
                "worst_lower_bound_points": None if worst is None else worst["lower_bound_points"],
                "lowest_loss_bound_method": ranked[0][1] if ranked else None,
                "lowest_loss_bound_points": float(ranked[0][2]["loss_upper_bound_points"].max())
                if ranked
                else None,
                "not_tested": "; ".join(not_tested),
                "evidence": "the baseline itself (the reference)"
                if named is None
                else f"{named[1]}: {_evidence_text(named[2])}",
            }
        )
    return pd.DataFrame(rows, columns=list(RECOMMENDATION_COLUMNS)), evidence


def _nan_last(v: float) -> float:
    return math.inf if v is None or math.isnan(v) else v


def _write(df: pd.DataFrame, path: str | Path) -> None:
    """The table at four decimals, through the one CSV writer (missing values as empty
    cells, as pandas would write them)."""
    rounded = df.round(4).astype(object)
    rows = rounded.where(df.notna(), None).to_dict("records")
    write_csv(path, list(df.columns), rows)


def write_recommendation(
    comparison_paths: Sequence[str | Path],
    memory_path: str | Path,
    out_path: str | Path,
    evidence_path: str | Path,
    *,
    margin_points: float | None = None,
    task_margin_points: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    deploy_prompts: Sequence[str] | None = None,
    controls: Collection[str] = (),
    control_of: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Read the comparison files (they carry the resampled differences the verdicts pool)
    and the memory table; write the recommendation and its evidence."""
    rec, evidence = recommend(
        [read_json(p) for p in comparison_paths],
        read_memory(memory_path),
        margin_points=margin_points,
        task_margin_points=task_margin_points,
        alpha=alpha,
        deploy_prompts=deploy_prompts,
        controls=controls,
        control_of=control_of,
    )
    _write(rec, out_path)
    _write(evidence, evidence_path)
    return rec
