"""What every figure shares, so that a reader who has learnt one can read the next: one colour
per quantization method, one display order, titles as papers write them, one set of GPU sizes.

* One colour per quantization method, the same in every figure: the unquantized baseline grey;
  each method family one hue of the Okabe-Ito palette (distinguishable under the common
  colour-vision deficiencies: GPTQ blue, round-to-nearest orange, bitsandbytes green, AWQ
  vermillion, GGUF purple, FP8 dark yellow), its methods shades of it, darker with fewer bits;
  a method of no known family gets a hue of its own.
* Datasets by their benchmark title, in registry order (grouped by task); prompting methods in
  registry order (zero-shot first); models in the config's order.
* GPU reference lines at :data:`biomedquant.common.gpus.GPU_SIZES_GIB`, the sizes the fit table
and
  the recommendation use.

Importing this module imports neither matplotlib nor pandas (the workflow imports the figure
registry while it plans).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

from biomedquant.common.gpus import GPU_SIZES_GIB, single_gpu_capacity_gb
from biomedquant.datasets.registry import DATASETS
from biomedquant.inference.prompting import PROMPT_METHODS
from biomedquant.methods.kinds import bits, display_names, method_family

if TYPE_CHECKING:
    import pandas as pd

BASELINE_COLOR = "#999999"
# Okabe & Ito (2008), "Color Universal Design"; yellow last, it is faint on white.
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")
# Reference lines: the common GPU sizes as marketed ("40 GB" is 40 GiB), each drawn on GB axes at
# what one such GPU holds under the fit rule (90% of it), where the fit table's column switches.
GPU_LINES_GB = tuple((gib, single_gpu_capacity_gb(gib)) for gib in GPU_SIZES_GIB)
GPU_LINE_COLOR = "#444444"
SIGNIFICANCE = 0.05
# Largest PNG side in pixels: the paper-scale figures stay loadable in a browser.
MAX_PIXELS = 6000
TASK_TITLES = {
    "ner": "named entity recognition",
    "re": "relation extraction",
    "mlc": "multi-label classification",
    "qa": "question answering",
}
METRIC_TITLES = {
    "f1": "F1",
    "macro_f1": "macro-F1",
    "micro_f1": "micro-F1",
    "accuracy": "accuracy",
    "precision": "precision",
    "recall": "recall",
}
# A score whose run left more than this share of answers unparsable is marked (hatched, with
# the rate): a low score may then say more about format than about knowledge.
PARSE_FAILURE_MARK = 0.2
PARSE_FAILURE_HATCH = "xxxx"
# Estimated (not measured) memory: hatched or hollow, never passed off as a measurement.
ESTIMATED_HATCH = "////"
# Sizes for figures read at print size; TrueType fonts keep the PDF's text editable.
STYLE = {
    "font.size": 8,
    "axes.titlesize": 9,
    "axes.labelsize": 8,
    "legend.fontsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "pdf.fonttype": 42,
}


@dataclass(frozen=True)
class Order:
    """Display order of models, methods and prompts, and the baseline method.

    The workflow passes the config's order, so a method keeps its colour and place in every
    figure; values found only in the data follow, sorted. ``with_data`` adds them.
    """

    methods: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()
    baseline: str | None = None
    # (method, name a reader knows) pairs from the method registry; slugs where none is known
    names: tuple[tuple[str, str], ...] = ()
    # (method, family, bits) from the method registry: the colour of each method
    families: tuple[tuple[str, str, int], ...] = ()
    # (model, domain, size class) from the config: which models the domain figure compares
    domains: tuple[tuple[str, str, str], ...] = ()

    def with_data(self, *frames: pd.DataFrame) -> Order:
        """This order extended by the values present in ``frames``."""
        found: dict[str, set[str]] = {"methods": set(), "models": set(), "prompts": set()}
        baseline = self.baseline
        for df in frames:
            if "method" in df:
                found["methods"].update(df["method"].dropna().astype(str))
            if "model" in df:
                found["models"].update(df["model"].dropna().astype(str))
            if "prompt" in df:
                found["prompts"].update(df["prompt"].dropna().astype(str))
            if "baseline" in df and len(df):
                names = df["baseline"].dropna().astype(str)
                found["methods"].update(names)
                baseline = baseline or (names.iloc[0] if len(names) else None)
        if baseline is None and ("none" in found["methods"] or "none" in self.methods):
            baseline = "none"
        prompt_rank = tuple(self.prompts) or tuple(PROMPT_METHODS)

        def extend(known: Sequence[str], new: set[str]) -> tuple[str, ...]:
            return tuple(known) + tuple(sorted(new - set(known)))

        methods = extend(self.methods, found["methods"])
        if baseline in methods:
            methods = (baseline, *(m for m in methods if m != baseline))
        prompts = extend(
            [p for p in prompt_rank if p in found["prompts"] or p in self.prompts],
            found["prompts"],
        )
        return Order(
            methods,
            extend(self.models, found["models"]),
            prompts,
            baseline,
            self.names,
            self.families,
            self.domains,
        )

    @staticmethod
    def sort(ranked: Sequence[str], values: Iterable[str]) -> list[str]:
        """``values`` (deduplicated) in the order of ``ranked``, unknown ones last, sorted."""
        present = {str(v) for v in values}
        return [v for v in ranked if v in present] + sorted(present - set(ranked))

    def name(self, method: str) -> str:
        """The method's display name (``GPTQ 4-bit, g128``) for legends; its slug if unknown."""
        return dict(self.names).get(method, method)

    def color(self, method: str) -> str:
        """The method's colour: grey for the baseline; where the registry's families are
        known, its family's hue in a shade by bits; else Okabe-Ito in the config's order."""
        if method == self.baseline:
            return BASELINE_COLOR
        if self.families:
            colors = family_colors(self.families, self.baseline)
            if method in colors:
                return colors[method]
            strays = [m for m in self.methods if m not in colors and m != self.baseline]
            idx = strays.index(method) if method in strays else len(strays)
            return method_color(_GOLDEN_START + len(colors) + idx)
        quantized = [m for m in self.methods if m != self.baseline]
        idx = quantized.index(method) if method in quantized else len(quantized)
        return method_color(idx)


# Past the eight Okabe-Ito colours: the six chromatic ones again at other lightness levels
# (black would turn into the baseline's grey, yellow into white), then evenly spread hues.
_SHADE_BASES = tuple(c for c in OKABE_ITO if c not in ("#000000", "#F0E442"))
_SHADE_LIGHTNESS = (0.28, 0.72, 0.18, 0.82)
# method_color's first golden-angle hue: the colours of methods of no known family
_GOLDEN_START = len(OKABE_ITO) + len(_SHADE_BASES) * len(_SHADE_LIGHTNESS)


def method_color(index: int) -> str:
    """The colour of the ``index``-th quantized method (from 0): Okabe-Ito for the first
    eight, then shades of its chromatic colours, then hues spread by the golden angle, so no
    two methods of a config share a colour however many it holds (the paper config has ten
    quantized methods), and none is the baseline's grey."""
    import colorsys

    if index < len(OKABE_ITO):
        return OKABE_ITO[index]
    rest = index - len(OKABE_ITO)
    if rest < len(_SHADE_BASES) * len(_SHADE_LIGHTNESS):
        base = _SHADE_BASES[rest % len(_SHADE_BASES)]
        lightness = _SHADE_LIGHTNESS[rest // len(_SHADE_BASES)]
        r, g, b = (int(base[i : i + 2], 16) / 255 for i in (1, 3, 5))
        hue, _, saturation = colorsys.rgb_to_hls(r, g, b)
    else:
        # golden-angle hues at two lightness levels: distinct for any index
        k = rest - len(_SHADE_BASES) * len(_SHADE_LIGHTNESS)
        hue, lightness, saturation = (k * 0.381966) % 1.0, (0.4, 0.6)[k % 2], 0.75
    r, g, b = colorsys.hls_to_rgb(hue, lightness, saturation)
    return "#{:02X}{:02X}{:02X}".format(*(round(255 * v) for v in (r, g, b)))


# One hue per method family (Okabe-Ito; FP8 in a darker yellow than the palette's, which is
# faint on white).
FAMILY_HUES = {
    "gptq": "#0072B2",
    "rtn": "#E69F00",
    "bitsandbytes": "#009E73",
    "awq": "#D55E00",
    "gguf": "#CC79A7",
    "fp8": "#A89A00",
}
# Lightness of a family's shades: most bits lightest, fewest darkest.
_FAMILY_LIGHTNESS = (0.66, 0.25)


@functools.lru_cache(maxsize=64)
def family_colors(
    families: tuple[tuple[str, str, int], ...], baseline: str | None
) -> dict[str, str]:
    """Each quantized method's colour: its family's hue, shaded by its rank in bits within the
    family (ties in config order); a family of one keeps the hue itself. Methods of a family
    without a hue of its own get golden-angle hues, spread like :func:`method_color`'s."""
    import colorsys

    members: dict[str, list[tuple[int, int, str]]] = {}
    for place, (method, family, n_bits) in enumerate(families):
        if method != baseline:
            members.setdefault(family, []).append((-n_bits, place, method))
    colors: dict[str, str] = {}
    unknown = 0
    for family, group in members.items():
        group.sort()
        if family not in FAMILY_HUES:
            for _, _, method in group:
                colors[method] = method_color(_GOLDEN_START + unknown)
                unknown += 1
            continue
        base = FAMILY_HUES[family]
        if len(group) == 1:
            colors[group[0][2]] = base
            continue
        r, g, b = (int(base[i : i + 2], 16) / 255 for i in (1, 3, 5))
        hue, _, saturation = colorsys.rgb_to_hls(r, g, b)
        light, dark = _FAMILY_LIGHTNESS
        for rank, (_, _, method) in enumerate(group):
            lightness = light + (dark - light) * rank / (len(group) - 1)
            rgb = colorsys.hls_to_rgb(hue, lightness, saturation)
            colors[method] = "#{:02X}{:02X}{:02X}".format(*(round(255 * v) for v in rgb))
    return colors


def size_class(params_b: float | None) -> str:
    """A model's size class, as the paper groups its models: 7-14B, or 70B and more."""
    if params_b is None:
        return "unknown size"
    return "7-14B" if float(params_b) < 30 else "70B+"


def order_from_config(config: dict[str, Any]) -> Order:
    """The display order a config implies (the workflow passes it to every figure as JSON)."""
    methods = tuple(config.get("methods", {}))
    baseline = next(
        (m for m, s in config.get("methods", {}).items() if s.get("kind") == "none"), None
    )
    names = tuple(display_names(config.get("methods", {})).items())
    families = tuple(
        (m, method_family(spec), bits(spec)) for m, spec in config.get("methods", {}).items()
    )
    domains = tuple(
        (m, spec["domain"], size_class(spec.get("params_b")))
        for m, spec in config.get("models", {}).items()
        if spec.get("domain")
    )
    return Order(
        methods,
        tuple(config.get("models", {})),
        tuple(config.get("prompts", ())),
        baseline,
        names,
        families,
        domains,
    )


def order_from_rows(df: pd.DataFrame) -> Order:
    """The order of a table written in the config's order (the fit and CPU deployment tables:
    one row per model x method), with the baseline from its ``kind`` column."""
    kinds = df["kind"].astype(str) if "kind" in df else None
    baseline = None
    if kinds is not None and (kinds == "none").any():
        baseline = str(df.loc[kinds == "none", "method"].iloc[0])
    families: tuple[tuple[str, str, int], ...] = ()
    if kinds is not None:
        from biomedquant.methods.kinds import METHOD_KINDS

        rows = df.drop_duplicates("method")
        n_bits = rows["bits"] if "bits" in rows else [0] * len(rows)
        families = tuple(
            (str(m), (METHOD_KINDS[k].family or k) if k in METHOD_KINDS else k, int(b or 0))
            for m, k, b in zip(
                rows["method"].astype(str), rows["kind"].astype(str), n_bits, strict=True
            )
        )
    return Order(
        methods=tuple(dict.fromkeys(df["method"].astype(str))),
        models=tuple(dict.fromkeys(df["model"].astype(str))),
        baseline=baseline,
        families=families,
    )


def order_to_json(order: Order) -> str:
    """The JSON the workflow passes to ``biomedquant plot --order`` (sorted keys: a stable
    parameter, so Snakemake reruns a figure only when the order changes)."""
    return json.dumps(
        {
            "methods": list(order.methods),
            "models": list(order.models),
            "prompts": list(order.prompts),
            "baseline": order.baseline,
            "names": dict(order.names),
            "families": [list(f) for f in order.families],
            "domains": [list(d) for d in order.domains],
        },
        sort_keys=True,
    )


def order_from_json(text: str) -> Order:
    """An :class:`Order` from :func:`order_to_json`'s JSON (any key may be missing)."""
    raw = json.loads(text) if text else {}
    return Order(
        methods=tuple(raw.get("methods", ())),
        models=tuple(raw.get("models", ())),
        prompts=tuple(raw.get("prompts", ())),
        baseline=raw.get("baseline"),
        names=tuple(raw.get("names", {}).items()),
        families=tuple(tuple(f) for f in raw.get("families", ())),
        domains=tuple(tuple(d) for d in raw.get("domains", ())),
    )


def dataset_order(values: Iterable[str]) -> list[str]:
    """Datasets in registry order (NER, relation extraction, multi-label, QA)."""
    return Order.sort(list(DATASETS), values)


def dataset_title(name: str) -> str:
    """The benchmark's own name (BC5CDR-chemical, not bc5cdr_chem) for labels."""
    return DATASETS[name].title if name in DATASETS else name


def metric_title(name: str) -> str:
    """A metric as papers write it (macro-F1, not macro_f1)."""
    return METRIC_TITLES.get(name, name.replace("_", "-"))


_P = ParamSpec("_P")
_R = TypeVar("_R")


def marked_changes(comparisons: pd.DataFrame, alpha: float = SIGNIFICANCE) -> pd.Series:
    """Which rows of a comparison table (one per cell the report shows) get a star: adjusted
    p < ``alpha``, the p-values adjusted together over every row with a change
    (:func:`biomedquant.evaluation.stats.multiplicity.report_adjusted`, Benjamini-Hochberg,
    where that module says why). The change heatmap and the comparison table's page both
    read it, so they mark the same cells. A row without a change or a p-value is no test and
    not in the family."""
    import pandas as pd

    from biomedquant.evaluation.stats.multiplicity import report_adjusted

    def col(name: str) -> pd.Series:
        if name not in comparisons:
            return pd.Series(float("nan"), index=comparisons.index)
        return pd.to_numeric(comparisons[name], errors="coerce")

    adjusted = report_adjusted(col("p_value").where(col("diff").notna()).to_numpy())
    return pd.Series(adjusted < alpha, index=comparisons.index)


def styled(draw: Callable[_P, _R]) -> Callable[_P, _R]:
    """Draw under :data:`STYLE` without touching the caller's matplotlib settings (figures are
    built with ``matplotlib.figure.Figure``, not pyplot: no backend switch, nothing left open,
    so a notebook's inline plotting is unaffected)."""

    @functools.wraps(draw)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        import matplotlib

        with matplotlib.rc_context(STYLE):
            return draw(*args, **kwargs)

    return wrapper
