#!/usr/bin/env python
"""Benchmark: how often the verdict rule and the recommendation pass a quantized method, by
simulation with each task's real primary metric on the real test sets.

What is simulated, and why so:

* **Test sets.** Every dataset at its official test size, with its real gold answers and its
  real resampling units (:func:`biomedquant.evaluation.scoring.resampling_units` on its item ids:
  BC5CDR 480 and NCBI 94 blocks of 10 sentences, DDI 192 documents, every other item alone),
  read from the shared copy of the benchmark (``../shared/data/bionlp-benchmarks``). ChemProt's
  test file (16,943 pairs of 800 abstracts) is not in that copy: its gold is synthesised from the
  dev file by drawing whole dev abstracts (their pairs and labels together, seed 0) until 16,943
  pairs, so label frequencies and pairs per abstract are the real dev ones. A dataset with no
  real file at all is synthesised the same way from nothing (uniform labels; the run says so).
* **A baseline at a realistic level.** Each item has a predictive distribution (:class:`Profile`):
  single-label (RE, QA) the gold label with probability ``accuracy``, else another label drawn
  in proportion to its gold frequency plus the mean frequency (QA: uniform over the other
  options); NER each gold entity found exactly with probability ``recall``, found with a wrong
  boundary (one false and one missed entity) with ``boundary``, else missed, plus spurious
  one-token entities at ``spurious`` per token; multi-label each gold label chosen with
  ``recall`` and each other label with ``false_rate``. The baseline's primary metric is printed
  (BC5CDR entity F1 ~0.6, RE macro-F1 ~0.4-0.5, multi-label ~0.6-0.7, QA accuracy 0.6-0.7).
* **A quantized method with no true loss** differs from the baseline on a share of items (the
  flip rate, 2%, 5%, 10%), the share varying from unit to unit (gamma, shape 2, mean 1: a model
  that misreads an abstract misreads its sentences together). A changed item is a fresh draw
  from the same predictive distribution. Baseline and method are then exchangeable, so every
  metric's expected change is exactly 0, F1 and macro-F1 included (an up/down flip balance
  tuned on accuracy would not be lossless for macro-F1).
* **A true loss of L points** (1 point = 0.01 of the metric) is injected by "down-changes" on
  top: each item, with probability ``lambda x`` its unit's gamma weight, loses every correct
  positive decision of its answer (single-label: a right label becomes a wrong one, drawn as
  above; NER: its exactly found entities are dropped; multi-label: its correctly chosen labels
  are dropped). ``lambda`` is calibrated per dataset (bisection on the mean metric change over
  6 to 64 pilot baselines, more on small test sets, with common random numbers) so that the
  expected change of the dataset's primary metric is -L; since a task's change is the mean of
  its datasets' changes, the task loses L. The flips of the fresh draws are reduced so that the
  total flip rate stays at the nominal one where the loss allows (a loss needs at least its own
  down-changes). The realised mean change of the lossy comparisons is printed beside the target
  (the empirical check).
* **The project's own statistics.** Each simulated pair goes through
  :func:`biomedquant.evaluation.scoring.compare_runs` (in-memory files of parsed predictions,
  so :func:`~biomedquant.evaluation.stats.intervals.compare_items` is called exactly as the
  workflow calls it and the records carry ``primary_diff_draws``, ``changed_units``,
  ``flip_rate`` as the workflow writes them), then
  :func:`biomedquant.evaluation.stats.verdicts.task_tests` and
  :func:`biomedquant.analysis.recommendation.recommend`. One simulation is one study: one
  baseline per (dataset, prompting method), shared by every method as in the workflow; every
  comparison of a dataset uses the study's bootstrap stream (one seed per simulated study);
  the five prompting methods are independent draws.
* **Candidates.** ``config/paper.yaml``'s methods on Llama-3.1-8B, with the fit estimator's
  memory (so memory near-ties such as GPTQ-4 / RTN-4 / AWQ-4 / NF4 are the real ones).
  Round-to-nearest is the control: it loses the margin on every task (so its verdicts show the
  test's calibration: at a loss equal to the margin it should pass at most ``alpha`` of the
  time), and it is passed to ``recommend(controls=...)`` where that exists.
* **Scenarios.** (a) every candidate lossless; (b) for each task in turn, the least-memory
  candidate (GPTQ-3) loses twice its task's margin on that task, every other candidate lossless
  (the least-memory one is the candidate a lossy pass would be recommended as). The decision is
  a lab's for one prompting method: ``recommend`` on that prompt's comparisons with
  ``deploy_prompts=[prompt]`` and ``controls=`` (where it takes them), Holm over the
  candidates (eight: paper.yaml's GGUF Q8_0 is the engine's control, and controls other than
  round-to-nearest are not simulated, since they decide nothing); "recommended" is the
  candidate being the row's ``recommended``, "shown non-inferior" it being in
  ``shown_non_inferior``. Each prompt is one row.

Printed per flip rate: each verdict's probability per task (lossless candidates; the control at
loss = margin; GPTQ-3 at twice the margin on that task), the median detectable loss per task,
the realised flip rates and changes, and the recommendation probabilities; at the start, what
one point means on each test set at the simulated baseline.

Margins (points; ``--margins`` tries others; the project's own are in
:data:`biomedquant.evaluation.stats.verdicts.DEFAULT_MARGINS`). Proposed: NER 2, RE 2, MLC 3,
QA 2.5. What a point is (uniform errors at the simulated baseline): BC5CDR ~76 of 5,385
entities found, NCBI ~13 of 960; ChemProt ~180 of 16,943 pairs, DDI ~62 of 5,761 pairs (fewer
where the errors fall on the rare relation types); HoC ~7 of 478 gold labels, LitCovid ~63 of
3,616; MedQA ~13 of 1,273 questions, PubMedQA 5 of 500. What the test sets resolve at 5% flips
(detectable loss, 80% power at alpha 0.05): NER ~0.7, RE ~0.5, MLC ~0.8, QA ~1.4 points. A
lossless candidate passes Holm's procedure over eight candidates when its p-value is below about
alpha / 8, which takes a margin of about twice the detectable loss; the proposal leaves that
with room at 5% flips (NER 2.7x, RE 4x, MLC 3.7x, QA 1.8x the detectable loss). Accuracy's
spread is fixed by the flip rate (about sqrt(f / n)), so QA's margin needs little room; F1's
spread depends on where the errors fall (an independent simulation found RE macro-F1 about
twice as spread as accuracy), so RE keeps twice the room it needs here.

Monte Carlo error: a probability p from S simulations x 5 prompt rows has a standard error of
about sqrt(p (1 - p) / (5 S)) (a study's prompts are independent draws and share only the
seed's bootstrap indices): 0.08 at p = 0.8 and 0.04 at p = 0.05 with the default 5 studies,
0.04 and 0.02 with ``--sims 20``. Detectable losses and verdict shares pool 9 candidates x 5
prompts per study and are tighter.

    python benchmarks/bench_verdicts.py [--sims 5] [--resamples 1000] \
        [--flip-rate 0.02,0.05,0.10] [--margins ner=2,re=2,mlc=3,qa=2.5] [--seed 0] \
        [--datasets bc5cdr_chem,...]

A benchmark, not a test: it asserts nothing. One simulated study (440 comparisons at the full
test sizes) takes about 35 s of one core, so the defaults (3 flip rates x 5 studies) take about
10 minutes on an idle machine; ``--sims 20``, about 35.
"""

from __future__ import annotations

import argparse
import inspect
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from biomedquant.analysis.recommendation import recommend
from biomedquant.common.files import JsonLines
from biomedquant.datasets.readers import read_source
from biomedquant.datasets.registry import DATASETS, DatasetSpec
from biomedquant.evaluation.scoring import compare_runs, resampling_units
from biomedquant.evaluation.stats.sufficient import TASK_KIND, item_stats, observed_metrics
from biomedquant.evaluation.stats.verdicts import VERDICTS, task_tests
from biomedquant.models.shapes import shape_for_model
from biomedquant.planning.estimator import estimate
from biomedquant.tasks import get_task
from biomedquant.tasks.metrics import iob2_spans

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "bionlp-benchmarks"
PROMPTS = ("zero-shot", "one-shot", "five-shot", "cot", "sc-cot")
TASK_ORDER = ("ner", "re", "mlc", "qa")
MODEL = "llama31_8b"
BASELINE = "none"
# Proposed margins (points); see the closing note of main() and docs/guide/paper.md.
PROPOSED_MARGINS = {"ner": 2.0, "re": 2.0, "mlc": 3.0, "qa": 2.5}
# Pilot baselines of the loss calibration: at least 6, more on small test sets (whose metric
# moves more from draw to draw and which cost little), about 20,000 items in all, at most 64.
PILOT_ITEMS = 20_000


@dataclass(frozen=True)
class Profile:
    """A baseline's predictive distribution per item (see the module docstring)."""

    accuracy: float = 0.0  # single-label
    recall: float = 0.0  # NER entities, multi-label gold labels
    boundary: float = 0.0  # NER: entity found with a wrong boundary
    spurious: float = 0.0  # NER: spurious one-token entities per token
    false_rate: float = 0.0  # multi-label: a label not in the gold chosen


PROFILES = {
    "bc5cdr_chem": Profile(recall=0.62, boundary=0.10, spurious=0.012),
    "ncbi_disease": Profile(recall=0.58, boundary=0.12, spurious=0.012),
    "chemprot": Profile(accuracy=0.70),
    "ddi": Profile(accuracy=0.70),
    "hoc": Profile(recall=0.70, false_rate=0.06),
    "litcovid": Profile(recall=0.75, false_rate=0.08),
    "medqa": Profile(accuracy=0.60),
    "pubmedqa": Profile(accuracy=0.70),
}


# --- test sets ------------------------------------------------------------------------------


def _real_records(spec: DatasetSpec) -> tuple[list[dict[str, Any]], str] | None:
    """The dataset's test records from the shared copy, or its dev records (marked), or None."""
    for split in ("test", "dev"):
        src = spec.files.get(split)
        if src is not None and (SHARED_DATA / src.path).exists():
            return read_source(SHARED_DATA / src.path, src.reader), split
    return None


def _synthetic_test(spec: DatasetSpec, dev: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A test set of the official size drawn from whole dev clusters (pairs of one abstract
    together, with their labels), so label frequencies and cluster sizes are the dev ones."""
    rx = re.compile(spec.cluster_pattern or r"^(.*)$")
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in dev:
        m = rx.match(r["id"])
        groups[m.group(1) if m else r["id"]].append(r)
    keys = list(groups)
    rnd = np.random.default_rng(0)
    out: list[dict[str, Any]] = []
    k = 0
    while len(out) < spec.test_size:
        for j, r in enumerate(groups[keys[rnd.integers(len(keys))]]):
            if len(out) < spec.test_size:
                out.append({**r, "id": f"{1000000 + k}.{j}", "text": ""})
        k += 1
    return out


def _uniform_test(spec: DatasetSpec) -> list[dict[str, Any]]:
    """Last resort (no shared data): uniform gold labels, every item its own unit."""
    rnd = np.random.default_rng(0)
    labels = list(spec.labels)
    n = spec.test_size
    if spec.task == "ner":
        tags = [["O"] * 10 + ["B", "I"] + ["O"] * 13 for _ in range(n)]
        return [{"id": f"s{i}", "tokens": ["x"] * 25, "tags": t} for i, t in enumerate(tags)]
    if spec.task == "mlc":
        return [{"id": str(i), "labels": [str(rnd.choice(labels))]} for i in range(n)]
    if spec.task == "qa":
        opts = {lab: lab for lab in labels}
        return [
            {"id": str(i), "options": opts, "answer": str(rnd.choice(labels))} for i in range(n)
        ]
    return [{"id": str(i), "text": "", "label": str(rnd.choice(labels))} for i in range(n)]


@dataclass
class TestSet:
    """One dataset as the simulation sees it: gold records, gold answers, resampling units."""

    spec: DatasetSpec
    gold: JsonLines
    answers: list[Any]
    units: np.ndarray  # resampling unit of each item (0..m-1)
    source: str

    @property
    def kind(self) -> str:
        return TASK_KIND[self.spec.task]


def load_test_set(name: str) -> TestSet:
    """The simulation's view of dataset ``name`` (see the module docstring)."""
    spec = DATASETS[name]
    found = _real_records(spec)
    if found is not None and found[1] == "test":
        records, source = found[0], "real test file"
    elif found is not None:
        records = _synthetic_test(spec, found[0])
        source = f"synthesised from the real {found[1]} file's clusters and labels"
    else:
        records, source = _uniform_test(spec), "synthesised (no shared data): uniform labels"
    task = get_task(spec.task)
    if found is None:  # made-up ids match no cluster pattern: every item its own unit
        units = np.arange(len(records))
    else:
        units, _ = resampling_units(spec, [r["id"] for r in records])
    gold = JsonLines(records, "", "", f"{name}/test.jsonl")
    return TestSet(spec, gold, [task.gold(r) for r in records], units, source)


# --- predictions ----------------------------------------------------------------------------


class Simulator:
    """Draws, changes and degrades one dataset's predictions (internal form per kind:
    label indices, a label indicator matrix, or a frozenset of entity spans per sentence)."""

    def __init__(self, ts: TestSet, profile: Profile) -> None:
        self.ts = ts
        self.p = profile
        self.n = len(ts.answers)
        kind = ts.kind
        if kind == "single":
            if ts.spec.task == "qa":
                self.labels = sorted({a for r in ts.gold.records for a in r["options"]})
            else:
                self.labels = list(ts.spec.labels)
            index = {lab: j for j, lab in enumerate(self.labels)}
            self.g = np.array([index[a] for a in ts.answers])
            k = len(self.labels)
            freq = np.bincount(self.g, minlength=k) / self.n
            err = np.ones(k) if ts.spec.task == "qa" else freq + freq.mean()
            q = np.tile(err, (k, 1))
            np.fill_diagonal(q, 0.0)
            q /= q.sum(axis=1, keepdims=True)
            self.wrong_cum = np.cumsum(q, axis=1)  # row: gold label; a wrong label's CDF
        elif kind == "multi":
            self.labels = list(ts.spec.labels)
            index = {lab: j for j, lab in enumerate(self.labels)}
            self.g = np.zeros((self.n, len(self.labels)), dtype=bool)
            for i, labs in enumerate(ts.answers):
                self.g[i, [index[lab] for lab in labs]] = True
        else:
            self.spans = [frozenset(iob2_spans(t)) for t in ts.answers]
            self.width = [len(t) for t in ts.answers]
            self.free = []  # per sentence: tokens no gold entity covers (spurious ones go there)
            for spans, w in zip(self.spans, self.width, strict=True):
                covered = {t for s, e in spans for t in range(s, e)}
                self.free.append(np.array([t for t in range(w) if t not in covered]))

    # one answer per item ----------------------------------------------------------------
    def draw(self, rng: np.random.Generator, idx: np.ndarray | None = None) -> Any:
        """Fresh answers for items ``idx`` (all when None)."""
        idx = np.arange(self.n) if idx is None else idx
        kind = self.ts.kind
        if kind == "single":
            return self._single(rng, idx)
        if kind == "multi":
            u = rng.random((len(idx), len(self.labels)))
            gold = self.g[idx]
            return np.where(gold, u < self.p.recall, u < self.p.false_rate)
        return [self._sentence(rng, int(i)) for i in idx]

    def _wrong(self, rng: np.random.Generator, gold: np.ndarray) -> np.ndarray:
        u = rng.random(len(gold))
        return (u[:, None] > self.wrong_cum[gold]).sum(axis=1).clip(max=len(self.labels) - 1)

    def _single(self, rng: np.random.Generator, idx: np.ndarray) -> np.ndarray:
        gold = self.g[idx]
        right = rng.random(len(idx)) < self.p.accuracy
        return np.where(right, gold, self._wrong(rng, gold))

    def _sentence(self, rng: np.random.Generator, i: int) -> frozenset[tuple[int, int]]:
        out: set[tuple[int, int]] = set()
        taken: set[int] = set()
        width = self.width[i]
        starts = {s for s, _ in self.spans[i]}
        for s, e in sorted(self.spans[i]):
            u = rng.random()
            if u < self.p.recall:
                out.add((s, e))
            elif u < self.p.recall + self.p.boundary:
                # one token longer when the next token is free, else one shorter
                if e < width and e not in starts and e not in taken:
                    out.add((s, e + 1))
                    taken.add(e)
                elif e - s > 1:
                    out.add((s + 1, e))
        free = self.free[i]
        k = rng.poisson(self.p.spurious * width)
        if k and len(free):
            for t in rng.choice(free, size=min(k, len(free)), replace=False):
                if int(t) not in taken:
                    out.add((int(t), int(t) + 1))
        return frozenset(out)

    # the method's answers ----------------------------------------------------------------
    def copy(self, x: Any) -> Any:
        return list(x) if self.ts.kind == "ner" else x.copy()

    def replace(self, x: Any, idx: np.ndarray, new: Any) -> Any:
        if self.ts.kind == "ner":
            for j, i in enumerate(idx):
                x[int(i)] = new[j]
        else:
            x[idx] = new
        return x

    def degrade(self, rng: np.random.Generator, x: Any, mask: np.ndarray) -> Any:
        """Every correct positive decision of the items in ``mask`` made wrong."""
        idx = np.flatnonzero(mask)
        kind = self.ts.kind
        if kind == "single":
            right = idx[x[idx] == self.g[idx]]
            x[right] = self._wrong(rng, self.g[right])
        elif kind == "multi":
            x[idx] &= ~self.g[idx]
        else:
            for i in idx:
                x[int(i)] = x[int(i)] - self.spans[int(i)]
        return x

    def has_correct(self, x: Any) -> np.ndarray:
        """Per item, whether degrading it would change it."""
        kind = self.ts.kind
        if kind == "single":
            return x == self.g
        if kind == "multi":
            return (x & self.g).any(axis=1)
        return np.array([bool(p & g) for p, g in zip(x, self.spans, strict=True)])

    def differ(self, x: Any, y: Any) -> np.ndarray:
        if self.ts.kind == "single":
            return x != y
        if self.ts.kind == "multi":
            return (x != y).any(axis=1)
        return np.array([a != b for a, b in zip(x, y, strict=True)])

    def primary(self, x: Any) -> float:
        """The primary metric of answers ``x`` (the project's metric code)."""
        stats = item_stats(self.ts.kind, self.ts.answers, self.answers(x))
        return observed_metrics(stats)[get_task(self.ts.spec.task).primary_metric]

    def answers(self, x: Any) -> list[Any]:
        """Answers as the parsed predictions of a prediction file."""
        kind = self.ts.kind
        if kind == "single":
            return [self.labels[j] for j in x]
        if kind == "multi":
            return [[self.labels[j] for j in np.flatnonzero(row)] for row in x]
        out = []
        for spans, w in zip(x, self.width, strict=True):
            tags = ["O"] * w
            for s, e in spans:
                tags[s] = "B"
                tags[s + 1 : e] = ["I"] * (e - s - 1)
            out.append(tags)
        return out

    def weights(self, rng: np.random.Generator) -> np.ndarray:
        """Per item, its unit's change propensity (gamma, shape 2, mean 1)."""
        units = self.ts.units
        return rng.gamma(2.0, 0.5, int(units.max()) + 1)[units]


@dataclass
class Calibrated:
    """What a dataset needs to draw a method: the mean change probability of a fresh draw,
    the share of items a degradation changes, and lambda per target loss."""

    redraw_change: float
    degradable: float
    lam: dict[float, float]


def per_point(sim: Simulator, rng: np.random.Generator) -> tuple[float, str]:
    """What one point of the primary metric is on this test set at the simulated baseline:
    how many correct decisions (RE/QA items, NER entities, multi-label labels), turned wrong
    on items drawn uniformly, lower the metric by 0.01."""
    x = sim.draw(rng)
    y = sim.degrade(rng, sim.copy(x), rng.random(sim.n) < 0.1)
    kind = sim.ts.kind
    if kind == "single":
        lost, unit = float((x != y).sum()), f"items of {sim.n}"
    elif kind == "multi":
        lost, unit = float((x & ~y).sum()), f"gold labels of {int(sim.g.sum())}"
    else:
        lost = float(sum(len(a - b) for a, b in zip(x, y, strict=True)))
        unit = f"entities of {sum(map(len, sim.spans))}"
    return lost / (100 * (sim.primary(x) - sim.primary(y))), unit


def calibrate(sim: Simulator, losses: Sequence[float], rng: np.random.Generator) -> Calibrated:
    """Mean change probabilities from pilot draws; lambda for each loss (points) by bisection
    on the mean primary-metric change over pilot baselines (common random numbers; see
    :data:`PILOT_ITEMS`)."""
    pilots = [sim.draw(rng) for _ in range(min(64, max(6, PILOT_ITEMS // sim.n)))]
    redraw = float(np.mean([sim.differ(x, sim.draw(rng)).mean() for x in pilots[:2]]))
    degradable = float(np.mean([sim.has_correct(x).mean() for x in pilots]))
    base = [sim.primary(x) for x in pilots]
    crn = [(sim.weights(rng), rng.random(sim.n), int(rng.integers(2**31))) for _ in pilots]

    def change(lam: float) -> float:
        out = []
        for x, b, (w, u, s) in zip(pilots, base, crn, strict=True):
            y = sim.degrade(np.random.default_rng(s), sim.copy(x), u < lam * w)
            out.append(sim.primary(y) - b)
        return float(np.mean(out))

    lam: dict[float, float] = {0.0: 0.0}
    slope = -change(0.02) / 0.02  # points lost per unit of lambda, near linear
    for loss in sorted(set(losses) - {0.0}):
        lo, hi = 0.0, min(1.0, 3 * loss / 100 / max(slope, 1e-9))
        while hi < 1.0 and change(hi) > -loss / 100:
            lo, hi = hi, min(1.0, 2 * hi)
        for _ in range(12):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if change(mid) > -loss / 100 else (lo, mid)
        lam[loss] = (lo + hi) / 2
    return Calibrated(redraw, degradable, lam)


def method_answers(
    sim: Simulator,
    cal: Calibrated,
    base: Any,
    flip: float,
    loss: float,
    rng: np.random.Generator,
) -> Any:
    """A method's answers: the baseline's, with fresh draws on a share of the items and, for a
    loss, degraded items (see the module docstring)."""
    w = sim.weights(rng)
    lam = cal.lam[loss]
    redraw_rate = max(0.0, flip - lam * cal.degradable) / max(cal.redraw_change, 1e-9)
    y = sim.copy(base)
    idx = np.flatnonzero(rng.random(sim.n) < np.minimum(redraw_rate * w, 1.0))
    if len(idx):
        y = sim.replace(y, idx, sim.draw(rng, idx))
    if lam > 0:
        y = sim.degrade(rng, y, rng.random(sim.n) < np.minimum(lam * w, 1.0))
    return y


def prediction_file(ts: TestSet, sim: Simulator, x: Any, who: str) -> JsonLines:
    """Answers ``x`` as an in-memory prediction file of parsed predictions."""
    recs = [
        {"id": r["id"], "prediction": a}
        for r, a in zip(ts.gold.records, sim.answers(x), strict=True)
    ]
    return JsonLines(recs, "", "", f"{who}/{ts.spec.name}.jsonl")


def compare(
    ts: TestSet, base: JsonLines, other: JsonLines, method: str, prompt: str, args: Any
) -> dict[str, Any]:
    """The comparison record the workflow would write for these two prediction files."""
    return compare_runs(
        gold=ts.gold,
        baseline_predictions=base,
        predictions=other,
        dataset=ts.spec.name,
        model=MODEL,
        method=method,
        baseline=BASELINE,
        prompt=prompt,
        resamples=args.resamples,
        seed=args.study_seed,
    )


# --- candidates -----------------------------------------------------------------------------


def _is_control(name: str, method: Mapping[str, Any]) -> bool:
    """A control by the project's rule where it has one (a kind marked as a control, or an
    entry marked ``control: true``), else round-to-nearest and marked entries."""
    try:
        from biomedquant.methods.kinds import is_control
    except ImportError:
        return bool(method.get("control")) or method.get("kind") == "rtn"
    return bool(is_control({"name": name, **method}))


def paper_methods() -> tuple[pd.DataFrame, list[str], list[str]]:
    """Memory table (fit estimator, Llama-3.1-8B, the 16-bit baseline included), the
    candidates and the round-to-nearest controls of config/paper.yaml. Other controls (the
    engine's F16 GGUF) are left out: they are never candidates and their comparisons would
    only cost time."""
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    shape = shape_for_model(cfg["models"][MODEL])
    rows, candidates, controls = [], [], []
    for name, m in cfg["methods"].items():
        gb = estimate(shape, m)["total_gb"] if shape is not None else math.nan
        rows.append(
            {"model": MODEL, "method": name, "est_total_gb": gb, "peak_gpu_allocated_gb": None}
        )
        if name == BASELINE:
            continue
        if not _is_control(name, m):
            candidates.append(name)
        elif m.get("kind") == "rtn":
            controls.append(name)
    return pd.DataFrame(rows), candidates, controls


# --- one simulated study --------------------------------------------------------------------


def recommend_for(
    records: list[dict[str, Any]],
    memory: pd.DataFrame,
    margins: Mapping[str, float],
    controls: list[str],
    prompt: str,
) -> tuple[str, set[str]]:
    """(recommended, shown non-inferior) for a lab deploying ``prompt``: ``recommend`` on
    that prompt's comparisons (``deploy_prompts`` and ``controls`` where it takes them).

    The rule of one recommendation over every prompting method (the fixed sequence before
    issue 45) answers, on one prompt's comparisons, the same question for that prompt."""
    kwargs: dict[str, Any] = {"task_margin_points": margins}
    params = inspect.signature(recommend).parameters
    if "controls" in params:
        kwargs["controls"] = controls
    if "deploy_prompts" in params:
        kwargs["deploy_prompts"] = [prompt]
    rec, _ = recommend([c for c in records if c["prompt"] == prompt], memory, **kwargs)
    row = rec.iloc[0]
    shown = {m for m in str(row.get("shown_non_inferior") or "").split(";") if m}
    return str(row["recommended"]), shown


@dataclass
class Tally:
    """Counts over simulations for one flip rate."""

    verdicts: dict[tuple[str, str], Counter[str]]  # (who, task) -> verdict counts
    detectable: dict[str, list[float]]
    flips: dict[str, list[float]]
    realised: dict[tuple[str, str], list[float]]  # (dataset, who) -> observed changes (points)
    rec: Counter[str]  # scenario -> rows where the focus candidate is recommended
    shown: Counter[str]  # scenario -> rows where it is shown non-inferior
    shown_all: Counter[str]  # "no loss": per candidate, rows shown non-inferior
    rows: Counter[str]


def simulate_study(
    tests: dict[str, TestSet],
    sims: dict[str, Simulator],
    cals: dict[str, Calibrated],
    flip: float,
    margins: Mapping[str, float],
    memory: pd.DataFrame,
    candidates: list[str],
    controls: list[str],
    focus: str,
    rng: np.random.Generator,
    args: Any,
    tally: Tally,
) -> None:
    """One study: every dataset x prompt x method compared, then verdicts and recommendations
    for each scenario, added to ``tally``."""
    lossless: list[dict[str, Any]] = []
    lossy: dict[str, list[dict[str, Any]]] = defaultdict(list)  # task -> focus's lossy records
    for prompt in PROMPTS:
        for name, ts in tests.items():
            sim, cal = sims[name], cals[name]
            margin = margins[ts.spec.task]
            base = sim.draw(rng)
            base_file = prediction_file(ts, sim, base, BASELINE)
            for method in (*candidates, *controls):
                loss = margin if method in controls else 0.0
                y = prediction_file(
                    ts, sim, method_answers(sim, cal, base, flip, loss, rng), method
                )
                lossless.append(compare(ts, base_file, y, method, prompt, args))
            y = method_answers(sim, cal, base, flip, 2 * margin, rng)
            y_file = prediction_file(ts, sim, y, focus)
            lossy[ts.spec.task].append(compare(ts, base_file, y_file, focus, prompt, args))
    for c in lossless:
        who = "control" if c["method"] in controls else "lossless"
        if who == "lossless":
            tally.flips[c["dataset"]].append(c["flip_rate"])
        tally.realised[(c["dataset"], who)].append(100 * _primary_diff(c))
    for recs in lossy.values():
        for c in recs:
            tally.realised[(c["dataset"], "2 x margin")].append(100 * _primary_diff(c))
    # verdicts: every test of the no-loss study, and the focus's lossy task
    tests_lossless = task_tests(lossless, task_margin_points=margins)
    tests_lossy = {t: task_tests(r, task_margin_points=margins) for t, r in lossy.items()}
    for row in tests_lossless:
        who = "control" if row["method"] in controls else "lossless"
        tally.verdicts[(who, row["task"])][row["verdict"]] += 1
        if who == "lossless" and not math.isnan(row["detectable_loss_points"]):
            tally.detectable[row["task"]].append(row["detectable_loss_points"])
    for task, rows in tests_lossy.items():
        for row in rows:
            tally.verdicts[("2 x margin", task)][row["verdict"]] += 1
    scenarios = {"no loss": lossless}
    for task in TASK_ORDER:
        if task in lossy:
            kept = [c for c in lossless if not (c["method"] == focus and c["task"] == task)]
            scenarios[task] = kept + lossy[task]
    for label, records in scenarios.items():
        for prompt in PROMPTS:
            chosen, shown = recommend_for(records, memory, margins, controls, prompt)
            tally.rows[label] += 1
            tally.rec[label] += chosen == focus
            tally.shown[label] += focus in shown
            if label == "no loss":
                for m in candidates:
                    tally.shown_all[m] += m in shown


def _primary_diff(c: Mapping[str, Any]) -> float:
    return float(c["metrics"][c["primary_metric"]]["diff"])


# --- report ---------------------------------------------------------------------------------


def parse_margins(text: str | None) -> dict[str, float]:
    """``ner=2,re=3`` over the proposed margins."""
    margins = dict(PROPOSED_MARGINS)
    for part in (text or "").split(","):
        if part.strip():
            task, value = part.split("=")
            margins[task.strip()] = float(value)
    return margins


def print_flip_rate(
    flip: float,
    tally: Tally,
    tests: dict[str, TestSet],
    candidates: list[str],
    focus: str,
    margins: Mapping[str, float],
    seconds: float,
) -> dict[str, tuple[float, float]]:
    """The tables of one flip rate; returns the two Done-when figures per rule."""
    sims = tally.rows["no loss"] // len(PROMPTS) if tally.rows["no loss"] else 0
    print(f"\n=== flip rate {flip:g}: {sims} simulated studies ({seconds:.0f} s)")
    head = f"{'verdicts':<24}{'task':<5}" + "".join(f"{v:>22}" for v in VERDICTS)
    print(head)
    for who in ("lossless", "control", "2 x margin"):
        label = {
            "lossless": "no true loss",
            "control": "loss = margin (RTN)",
            "2 x margin": "loss = 2 x margin",
        }[who]
        for task in TASK_ORDER:
            counts = tally.verdicts.get((who, task))
            if not counts:
                continue
            total = sum(counts.values())
            cells = "".join(f"{counts[v] / total:>22.3f}" for v in VERDICTS)
            print(f"{label:<24}{task:<5}{cells}")
    det = ", ".join(
        f"{t} {np.median(tally.detectable[t]):.2f}" for t in TASK_ORDER if tally.detectable[t]
    )
    print(f"detectable loss (points, median over lossless tests): {det}")
    fl = ", ".join(f"{n} {np.mean(v):.3f}" for n, v in tally.flips.items())
    print(f"realised flip rate (lossless, mean): {fl}")
    parts = []
    for name, ts in tests.items():
        got = tally.realised.get((name, "2 x margin"))
        if got:
            m = 2 * margins[ts.spec.task]
            parts.append(f"{name} {np.mean(got):+.2f} (target {-m:+g})")
    print(f"realised change at 2 x margin (points, mean): {', '.join(parts)}")
    zero = ", ".join(
        f"{n} {np.mean(tally.realised[(n, 'lossless')]):+.2f}"
        for n in tests
        if tally.realised.get((n, "lossless"))
    )
    print(f"realised change with no true loss (points, mean): {zero}")
    rules = [("recommend()", tally.rec, tally.shown, tally.shown_all)]
    figures = {}
    for rule, rec, shown, shown_all in rules:
        rows = tally.rows["no loss"]
        print(f"{rule}, per (model, prompt) row ({rows} rows); {focus}: least-memory candidate")
        print(
            f"  no true loss: {focus} recommended {rec['no loss'] / rows:.3f},"
            f" shown non-inferior {shown['no loss'] / rows:.3f}"
        )
        each = ", ".join(f"{m} {shown_all[m] / rows:.2f}" for m in candidates)
        print(f"  no true loss, each candidate shown non-inferior: {each}")
        worst = 0.0
        for task in TASK_ORDER:
            n = tally.rows[task]
            if n:
                worst = max(worst, rec[task] / n)
                print(
                    f"  {focus} loses 2 x margin ({2 * margins[task]:g} points) on {task}:"
                    f" recommended {rec[task] / n:.3f}, shown non-inferior {shown[task] / n:.3f}"
                )
        figures[rule] = (rec["no loss"] / rows, worst)
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sims", type=int, default=5, help="simulated studies per flip rate")
    p.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    p.add_argument("--flip-rate", default="0.02,0.05,0.10", help="one or a comma list")
    p.add_argument("--margins", default=None, help="e.g. ner=2,re=1 (points) over the proposed")
    p.add_argument("--datasets", default=None, help="a comma list (default: all eight)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    margins = parse_margins(args.margins)
    flips = [float(f) for f in args.flip_rate.split(",") if f.strip()]
    names = args.datasets.split(",") if args.datasets else list(DATASETS.names())
    rng = np.random.default_rng(args.seed)
    memory, candidates, controls = paper_methods()
    mem = dict(zip(memory["method"], memory["est_total_gb"], strict=True))
    focus = min(candidates, key=lambda m: mem[m])
    start = time.perf_counter()
    tests = {n: load_test_set(n) for n in names}
    fallback = Profile(accuracy=0.6, recall=0.6, boundary=0.1, spurious=0.01, false_rate=0.05)
    sims = {n: Simulator(ts, PROFILES.get(n, fallback)) for n, ts in tests.items()}
    cals = {
        n: calibrate(sims[n], [margins[ts.spec.task], 2 * margins[ts.spec.task]], rng)
        for n, ts in tests.items()
    }
    print(
        f"{args.sims} simulated studies per flip rate x {len(names)} datasets x {len(PROMPTS)}"
        f" prompting methods x {len(candidates) + len(controls)} methods (Llama-3.1-8B memory"
        f" from the fit estimator), {args.resamples} resamples, seed {args.seed}"
    )
    print("margins (points): " + ", ".join(f"{t} {margins[t]:g}" for t in TASK_ORDER))
    for n, ts in tests.items():
        base = np.mean([sims[n].primary(sims[n].draw(rng)) for _ in range(3)])
        units = int(ts.units.max()) + 1
        count, unit = per_point(sims[n], rng)
        print(
            f"  {n:<13} {ts.spec.task:<4} {len(ts.answers):>6} items {units:>5} units  baseline"
            f" {get_task(ts.spec.task).primary_metric} {base:.3f}; 1 point ~ {count:.0f} {unit}"
            f"; {ts.source}"
        )
    print(f"  setup {time.perf_counter() - start:.0f} s")
    figures = {}
    for flip in flips:
        tally = Tally(
            defaultdict(Counter), defaultdict(list), defaultdict(list), defaultdict(list),
            Counter(), Counter(), Counter(), Counter(),
        )  # fmt: skip
        t0 = time.perf_counter()
        for s in range(args.sims):
            args.study_seed = args.seed * 1_000_003 + s
            simulate_study(
                tests, sims, cals, flip, margins, memory, candidates, controls, focus, rng,
                args, tally,
            )  # fmt: skip
        figures[flip] = print_flip_rate(
            flip, tally, tests, candidates, focus, margins, time.perf_counter() - t0
        )
    print("\nDone-when (issue 45): P(lossless least-memory candidate recommended) >= 0.8 and")
    print("P(candidate losing 2 x margin on one task recommended) <= 0.05 (worst task), at 5%:")
    for flip, by_rule in figures.items():
        for rule, (lossless, lossy) in by_rule.items():
            print(f"  flip {flip:g}, {rule}: lossless {lossless:.3f}, 2 x margin {lossy:.3f}")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
