"""Method kinds as data: every fact the pipeline needs about a kind of quantization, in one record.

A method in the config names its ``kind`` (``gptq``, ``bnb-nf4`` ...). What the workflow, the
fit estimator, the resource model, the doctor and the engines need to know about that kind is
declared here once, in :data:`METHOD_KINDS` (a kind's own loading code, such as the
bitsandbytes and FP8 configs, lives with its producer or engine):

* ``bits``: the nominal bits per quantized weight the tables show (16 for the baseline);
* the memory model: bytes per block-linear weight (all per-group overheads spread over the
  weights), bytes per output row and per input column, or, for a file format that quantizes
  every tensor its own way (GGUF), the whole model's bytes;
* ``producer``: the function that writes the kind's cached artifact (``module:function``,
  imported only when a job quantizes, so this module stays torch-free); a kind without one
  runs from the fetched 16-bit folder;
* ``load_time``: quantized while the 16-bit weights load (the job reads 16-bit weights);
* ``vllm_quantization``: vLLM's ``quantization`` argument for a kind vLLM quantizes itself
  (bitsandbytes has none: vLLM does not run it as specified, see
  :mod:`biomedquant.methods.engines`, the table of which engine runs which kind);
* ``engine``: the one engine that runs the kind (GGUF files: llama.cpp), if any (which
  engines run the other kinds at which bits: :data:`biomedquant.methods.engines.ENGINE_SUPPORT`);
* ``needs_fp8_gpu``: runs only on a GPU with FP8 units;
* ``runs_on_cpu``: its inference runs without a GPU (the demo runs every kind but AWQ and FP8
  on a CPU; GGUF files are made for it), which the deployment answer's ``--cpu`` reads;
* ``control``: a control, measured beside the candidates so that a candidate's change can be
  read against it, never a candidate for deployment (round-to-nearest: what GPTQ and AWQ must
  beat at the same bits and group size); a method entry can also be marked ``control: true``
  (:func:`is_control`);
* ``quantizes_on_cpu``: its artifact is written without a GPU (round-to-nearest and GGUF
  conversion are arithmetic on the weights, no forward passes to speed up), so its
  ``quantize_model`` job asks a scheduler for no GPU.

What is counted (arithmetic on a model's shape; the run records hold the measurements): every
linear layer inside the transformer blocks is quantized; embeddings, the LM head and norms stay
in 16-bit (GPTQ leaves them alone, and biomedquant tells bitsandbytes to skip the LM head, as its
defaults do). A GPTQ layer with ``bits`` and ``group_size`` g stores ``bits/8`` bytes per weight,
plus per group of g input columns and output row a 16-bit scale and a ``bits``-bit zero point,
and a 32-bit group index per input column. bitsandbytes int8 stores 1 byte per weight and a
float32 scale per row; NF4 stores half a byte per weight and an absmax per block of 64 (8-bit
with double quantization, plus a float32 per 256 blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from biomedquant.common.registry import Registry
from biomedquant.methods import gguf_layout

if TYPE_CHECKING:
    from biomedquant.models.shapes import ModelShape

__all__ = [
    "METHOD_KINDS",
    "MODEL_DIR",
    "MethodKind",
    "DEFAULT_GROUP_SIZE",
    "bits",
    "control_methods",
    "control_pairs",
    "group_size",
    "is_control",
    "linear_bytes_per_weight",
    "method_kind",
    "model_folder",
]

Method = dict[str, Any]

# bitsandbytes NF4 stores one absmax per block of 64 weights; with double quantization that
# absmax is itself 8-bit, with one 32-bit scale per 256 absmax values.
NF4_BLOCK = 64
NF4_DOUBLE_QUANT_BLOCK = 256


def _fixed(value: float) -> Callable[[Method], Any]:
    """A fact that does not depend on the method's parameters."""
    return lambda _method: value


def _configured_bits(method: Method) -> int:
    return int(method["bits"])


# Columns per quantization group of the grid kinds when a method does not say (GPTQ's and
# AWQ's own default; the schema's default for awq, a test holds them equal).
DEFAULT_GROUP_SIZE = 128


def group_size(method: Method) -> int:
    """The method's group size (-1: one group per row)."""
    return int(method.get("group_size", DEFAULT_GROUP_SIZE))


def _grid_bytes(method: Method) -> float:
    """GPTQ's packed format (gptq, rtn, awq): a 16-bit scale and a packed ``bits``-bit zero point
    per group of input columns; group_size -1 means one group per row (a row overhead)."""
    bits = int(method["bits"])
    group = group_size(method)
    return bits / 8 + ((2 + bits / 8) / group if group > 0 else 0.0)


def _grid_row_bytes(method: Method) -> float:
    if group_size(method) <= 0:
        return 2.0 + int(method["bits"]) / 8
    return 0.0


def _nf4_bytes(method: Method) -> float:
    if method.get("double_quant", True):
        return 0.5 + 1 / NF4_BLOCK + 4 / (NF4_BLOCK * NF4_DOUBLE_QUANT_BLOCK)
    return 0.5 + 4 / NF4_BLOCK


def _gguf_bytes(method: Method) -> float:
    """Block layouts of the type's base; :func:`_gguf_model_bytes` counts the exact mix."""
    return gguf_layout.linear_bytes_per_weight(gguf_layout.method_file_type(method))


def _gguf_model_bytes(shape: ModelShape, method: Method) -> float:
    return gguf_layout.gguf_weight_bytes(shape, gguf_layout.method_file_type(method))


def _grid_title(name: str) -> Callable[[Method], str]:
    """ "GPTQ 4-bit, g128": the kind, the bits and the group size (per row for -1)."""

    def title(method: Method) -> str:
        group = group_size(method)
        return f"{name} {int(method['bits'])}-bit, " + (f"g{group}" if group > 0 else "per row")

    return title


def _gguf_title(method: Method) -> str:
    return f"GGUF {str(method.get('type', '')).upper()}".strip()


@dataclass(frozen=True)
class MethodKind:
    """Everything the pipeline knows about one method kind (see the module docstring)."""

    name: str
    description: str
    bits: Callable[[Method], int]
    linear_bytes_per_weight: Callable[[Method], float]
    row_overhead_bytes: Callable[[Method], float] = _fixed(0.0)
    col_overhead_bytes: float = 0.0  # per input column of each block linear
    model_bytes: Callable[[ModelShape, Method], float] | None = None  # every tensor its own way
    producer: str | None = None  # "module:function" that writes the cached artifact
    load_time: bool = False  # quantized while loading: the 16-bit weights are read
    vllm_quantization: str | None = None  # vLLM's quantization= for a kind it quantizes itself
    engine: str | None = None  # the one engine that runs this kind (None: the configured one)
    needs_fp8_gpu: bool = False  # runs only on a GPU with FP8 units (compute capability 8.9+)
    runs_on_cpu: bool = True  # its inference runs on a CPU-only machine (slowly for most)
    quantizes_on_cpu: bool = False  # its quantize_model job needs no GPU
    control: bool = False  # measured beside the candidates, never recommended
    # the name a reader knows, for legends and captions ("GPTQ 4-bit, g128"); slugs stay in paths
    title: Callable[[Method], str] = _fixed("")
    # the method family a figure gives one hue (its methods shades of it, by bits); "" = its name
    family: str = ""

    @property
    def min_compute_capability(self) -> tuple[int, int] | None:
        """The oldest CUDA compute capability that runs this kind (None: any)."""
        from biomedquant.common.gpus import FP8_MIN_CAPABILITY

        return FP8_MIN_CAPABILITY if self.needs_fp8_gpu else None

    @property
    def artifact(self) -> bool:
        """Quantized once into a cached folder (else the fetched 16-bit model is loaded)."""
        return self.producer is not None


METHOD_KINDS: Registry[MethodKind] = Registry(
    "method kind",
    (
        (k.name, k)
        for k in (
            MethodKind(
                "none",
                "the model in its stored 16-bit dtype (the baseline)",
                title=_fixed("16-bit"),
                bits=_fixed(16),
                linear_bytes_per_weight=_fixed(2.0),
            ),
            MethodKind(
                "gptq",
                "GPTQ post-training quantization (optimum + gptqmodel)",
                title=_grid_title("GPTQ"),
                bits=_configured_bits,
                linear_bytes_per_weight=_grid_bytes,
                row_overhead_bytes=_grid_row_bytes,
                col_overhead_bytes=4.0,  # a 32-bit group index per input column (g_idx)
                producer="biomedquant.quantization.gptq:quantize_gptq_format",
            ),
            MethodKind(
                "rtn",
                "round-to-nearest on GPTQ's grid (the control for GPTQ)",
                title=_grid_title("RTN"),
                bits=_configured_bits,
                linear_bytes_per_weight=_grid_bytes,  # GPTQ's packed format and grid
                row_overhead_bytes=_grid_row_bytes,
                col_overhead_bytes=4.0,
                producer="biomedquant.quantization.gptq:quantize_gptq_format",
                quantizes_on_cpu=True,
                control=True,
            ),
            MethodKind(
                "bnb-int8",
                "bitsandbytes LLM.int8(), quantized at load time",
                title=_fixed("bitsandbytes int8"),
                family="bitsandbytes",
                bits=_fixed(8),
                linear_bytes_per_weight=_fixed(1.0),
                row_overhead_bytes=_fixed(4.0),  # one float32 scale per row
                load_time=True,
            ),
            MethodKind(
                "bnb-nf4",
                "bitsandbytes NF4 (4-bit), quantized at load time",
                title=_fixed("bitsandbytes NF4"),
                family="bitsandbytes",
                bits=_fixed(4),
                linear_bytes_per_weight=_nf4_bytes,
                load_time=True,
            ),
            MethodKind(
                "awq",
                "AWQ 4-bit (gptqmodel; quantizing needs a CUDA GPU)",
                title=_grid_title("AWQ"),
                bits=_configured_bits,
                # GPTQ's packing without the group index: no per-column overhead
                linear_bytes_per_weight=_grid_bytes,
                row_overhead_bytes=_grid_row_bytes,
                producer="biomedquant.quantization.awq:quantize_awq",
                runs_on_cpu=False,  # gptqmodel's AWQ kernels are CUDA extensions
            ),
            MethodKind(
                "gguf",
                "llama.cpp GGUF file (Q8_0, Q6_K, Q5_K_M, Q4_K_M, Q4_0)",
                title=_gguf_title,
                bits=gguf_layout.method_bits,
                linear_bytes_per_weight=_gguf_bytes,
                model_bytes=_gguf_model_bytes,
                producer="biomedquant.quantization.gguf:quantize_gguf",
                engine="llama_cpp",
                quantizes_on_cpu=True,
            ),
            MethodKind(
                "fp8",
                "FP8 E4M3 weights at load time (GPUs of compute 8.9+)",
                title=_fixed("FP8"),
                bits=_fixed(8),
                # one byte; per-tensor (vLLM) or 128x128-block scales are < 0.03%
                linear_bytes_per_weight=_fixed(1.0),
                load_time=True,
                vllm_quantization="fp8",
                needs_fp8_gpu=True,
                runs_on_cpu=False,
            ),
        )
    ),
)


def method_kind(method: Method) -> MethodKind:
    """The kind record of a method entry (an error naming the closest kinds when unknown)."""
    return METHOD_KINDS[method.get("kind")]


def display_names(methods: dict[str, Method]) -> dict[str, str]:
    """Each method's name for a reader (its kind's ``title``), as legends and captions show
    it; where two methods of a config would read alike (say, two GPTQ 4-bit g128 with other
    calibrations), each keeps its slug in parentheses."""
    titles = {name: method_kind(spec).title(spec) or name for name, spec in methods.items()}
    counts: dict[str, int] = {}
    for title in titles.values():
        counts[title] = counts.get(title, 0) + 1
    return {n: t if counts[t] == 1 else f"{t} ({n})" for n, t in titles.items()}


def method_family(method: Method) -> str:
    """The family of a method entry (gptq, rtn, bitsandbytes, awq, gguf, fp8, none): figures
    draw a family in one hue."""
    kind = method_kind(method)
    return kind.family or kind.name


# A model x method's artifact folder in a study (the fetched 16-bit model is method "none").
MODEL_DIR = "resources/models/{model}/{method}"


def model_folder(model: str, method_name: str, method: Method) -> str:
    """The folder inference loads for (model, method): the method's cached artifact, or, for
    a kind without one (the 16-bit baseline, bitsandbytes and FP8 quantized while loading),
    the fetched 16-bit model. The workflow's inputs and the deployment answer's file to
    deploy both come from here."""
    if not method_kind(method).artifact:
        return MODEL_DIR.format(model=model, method="none")
    return MODEL_DIR.format(model=model, method=method_name)


def is_control(method: Method) -> bool:
    """Whether a method entry is a control: its kind is one (round-to-nearest), or the entry
    says ``control: true`` (say, an F16 GGUF run through llama.cpp, which separates the
    engine's change from the quantization's). Controls are measured, never recommended."""
    return bool(method.get("control", method_kind(method).control))


def control_methods(methods: dict[str, Method]) -> list[str]:
    """The names of the controls among a config's method entries, in sorted order."""
    return sorted(name for name, spec in methods.items() if is_control(spec))


def control_pairs(methods: dict[str, Method]) -> dict[str, str]:
    """Each candidate's control among a config's method entries, where it has one: a control
    run by the same dedicated engine (a GGUF method's: a GGUF control, whose change against the
    baseline is the engine's share), else a control of a kind on the same grid with the same
    bits and group size (GPTQ's and AWQ's: round-to-nearest at their bits and group size). The
    candidate's change minus its control's is then the quantization method's own share."""
    controls = {n: spec for n, spec in methods.items() if is_control(spec)}
    pairs: dict[str, str] = {}
    for name, spec in methods.items():
        kind = method_kind(spec)
        if name in controls or kind.name == "none":
            continue
        for control, cspec in controls.items():
            ckind = method_kind(cspec)
            same_engine = kind.engine is not None and ckind.engine == kind.engine
            same_grid = (
                kind.engine is None
                and ckind.engine is None
                and "bits" in spec
                and (int(spec["bits"]), group_size(spec))
                == (int(cspec.get("bits", -1)), group_size(cspec))
            )
            if same_engine or same_grid:
                pairs[name] = control
                break
    return pairs


def bits(method: Method) -> int:
    """Bits per quantized weight (16 for the baseline), as the tables show them."""
    return method_kind(method).bits(method)


def linear_bytes_per_weight(method: Method) -> float:
    """Bytes per weight of a quantized block linear, all overheads spread over its weights
    (row-wise ones excluded: see :func:`biomedquant.planning.estimator.weight_bytes`)."""
    return method_kind(method).linear_bytes_per_weight(method)
