"""GGUF quantization types as facts: block layouts, llama.cpp's per-tensor type mix, bytes.

Torch-free, so the fit estimator and the config checks can use it anywhere.

A GGUF type stores weights in blocks along a tensor's rows (its input columns): ``Q8_0``
keeps 32 weights in 34 bytes (a 16-bit scale and 32 int8), ``Q4_0`` 32 weights in 18 bytes,
the k-quants 256 weights per super-block (``Q4_K`` 144 bytes, ``Q5_K`` 176, ``Q6_K`` 210).
These layouts are public (ggml's ``block_*`` structs) and give exact bytes per weight.

A llama.cpp file type (``Q4_K_M``, ``Q5_K_M`` ...) is a *mix*: llama.cpp's quantizer picks a
type per tensor. :func:`tensor_type` follows its rules for dense Llama-style models:

* the output head (and the token embeddings when the two are tied) gets ``Q6_K``, or ``Q8_0``
  when its row length is not a multiple of 256, and stays ``Q8_0`` in a ``Q8_0`` file;
* ``Q4_K_M`` / ``Q5_K_M`` give ``attn_v`` and ``ffn_down`` ``Q6_K`` in the first and last
  eighth of the layers and in every third layer between (llama.cpp's ``use_more_bits``);
* a tensor whose row length is not a multiple of the block size falls back to a type that
  fits (``Q4_K`` -> ``Q5_0``, ``Q5_K`` -> ``Q5_1``, ``Q6_K`` -> ``Q8_0``), then ``F16``;
* 1-D tensors (norms) stay ``F32``.

Left out (the approximation): rules for mixture-of-experts, Falcon, 70B-class ``attn_v``
bumps and importance-matrix-only tweaks. For the study's dense models the estimate matches
the file's tensor bytes; the memory table shows estimate beside measurement.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@dataclass(frozen=True)
class BlockLayout:
    """``nbytes`` bytes hold ``block`` consecutive weights of one row."""

    block: int
    nbytes: int

    @property
    def bytes_per_weight(self) -> float:
        return self.nbytes / self.block


# ggml's block structs: scales, mins and packed quants per block.
LAYOUTS: dict[str, BlockLayout] = {
    "F32": BlockLayout(1, 4),
    "F16": BlockLayout(1, 2),
    "Q8_0": BlockLayout(32, 34),  # f16 scale + 32 x int8
    "Q5_1": BlockLayout(32, 24),  # f16 scale + f16 min + 4 bytes high bits + 16 bytes nibbles
    "Q5_0": BlockLayout(32, 22),  # f16 scale + 4 bytes high bits + 16 bytes nibbles
    "Q4_1": BlockLayout(32, 20),  # f16 scale + f16 min + 16 bytes nibbles
    "Q4_0": BlockLayout(32, 18),  # f16 scale + 16 bytes nibbles
    "Q6_K": BlockLayout(256, 210),  # 128 low nibbles + 64 high bits + 16 int8 scales + f16
    "Q5_K": BlockLayout(256, 176),  # 2 x f16 + 12 scale bytes + 32 high bits + 128 nibbles
    "Q4_K": BlockLayout(256, 144),  # 2 x f16 + 12 scale bytes + 128 nibbles
}

# The file types a ``gguf`` method may name: llama.cpp's ftype id, its base tensor type and
# the nominal bits per weight the tables show.
FILE_TYPES: dict[str, tuple[int, str, int]] = {
    "F16": (1, "F16", 16),
    "Q8_0": (7, "Q8_0", 8),
    "Q6_K": (18, "Q6_K", 6),
    "Q5_K_M": (17, "Q5_K", 5),
    "Q4_K_M": (15, "Q4_K", 4),
    "Q4_0": (2, "Q4_0", 4),
}

FALLBACK = {"Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}


def check_file_type(name: str) -> str:
    """``name`` if it is a supported GGUF file type, else a ValueError listing them."""
    if name not in FILE_TYPES:
        raise ValueError(f"unknown GGUF type {name!r} (types: {', '.join(FILE_TYPES)})")
    return name


def use_more_bits(i_layer: int, n_layers: int) -> bool:
    """llama.cpp's choice of the layers that keep more bits in the ``_M`` mixes."""
    return (
        i_layer < n_layers // 8
        or i_layer >= 7 * n_layers // 8
        or (i_layer - n_layers // 8) % 3 == 2
    )


def fallback(type_name: str, row_length: int) -> str:
    """The type llama.cpp stores a tensor in when ``type_name``'s blocks do not tile its rows."""
    if row_length % LAYOUTS[type_name].block == 0:
        return type_name
    demoted = FALLBACK.get(type_name, type_name)
    return demoted if row_length % LAYOUTS[demoted].block == 0 else "F16"


def tensor_type(
    file_type: str, role: str, row_length: int, *, layer: int = 0, n_layers: int = 1
) -> str:
    """The type of one 2-D tensor in a ``file_type`` file.

    ``role`` is ``output`` (the LM head, or tied embeddings), ``token_embd``, ``attn_v``,
    ``ffn_down`` or any other block linear (``attn_q``, ``attn_k``, ``attn_output``,
    ``ffn_gate``, ``ffn_up``); ``row_length`` is the tensor's input width.
    """
    base = FILE_TYPES[check_file_type(file_type)][1]
    if base == "F16":
        return "F16"
    chosen = base
    if role == "output":
        if row_length % LAYOUTS[base].block != 0:
            chosen = "Q8_0"
        elif base != "Q8_0":
            chosen = "Q6_K"
    elif (
        role in ("attn_v", "ffn_down")
        and file_type in ("Q4_K_M", "Q5_K_M")
        and use_more_bits(layer, n_layers)
    ):
        chosen = "Q6_K"
    return fallback(chosen, row_length)


def block_tensors(shape: Any) -> list[tuple[str, int, int]]:
    """(role, rows, row length) of each linear layer of one transformer block."""
    hd = shape.dim_per_head
    return [
        ("attn_q", shape.heads * hd, shape.hidden),
        ("attn_k", shape.kv_heads * hd, shape.hidden),
        ("attn_v", shape.kv_heads * hd, shape.hidden),
        ("attn_output", shape.hidden, shape.heads * hd),
        ("ffn_gate", shape.intermediate, shape.hidden),
        ("ffn_up", shape.intermediate, shape.hidden),
        ("ffn_down", shape.hidden, shape.intermediate),
    ]


def tensor_bytes(type_name: str, n_weights: int) -> float:
    return LAYOUTS[type_name].bytes_per_weight * n_weights


@lru_cache(maxsize=256)
def gguf_weight_bytes(shape: Any, file_type: str) -> float:
    """Tensor bytes of a GGUF file of a model of ``shape`` (a :class:`ModelShape`, frozen, so
    hashable). Cached: it walks every tensor of every layer (hundreds for a 70B model), and the
    workflow's resource estimate asks it for every inference job of a GGUF method."""
    total = 4.0 * shape.norm_params  # 1-D tensors stay F32
    n = shape.layers
    for layer in range(n):
        for role, rows, width in block_tensors(shape):
            kind = tensor_type(file_type, role, width, layer=layer, n_layers=n)
            total += tensor_bytes(kind, rows * width)
    embd = shape.vocab * shape.hidden
    if shape.tied_embeddings:
        total += tensor_bytes(tensor_type(file_type, "output", shape.hidden), embd)
    else:
        total += tensor_bytes(tensor_type(file_type, "token_embd", shape.hidden), embd)
        total += tensor_bytes(tensor_type(file_type, "output", shape.hidden), embd)
    return total


def linear_bytes_per_weight(file_type: str) -> float:
    """Bytes per block-linear weight of the type's base layout (the ``_M`` mixes' extra bits
    left out; :func:`gguf_weight_bytes` counts a known shape's exact mix)."""
    return LAYOUTS[FILE_TYPES[check_file_type(file_type)][1]].bytes_per_weight


def method_file_type(method: dict[str, Any]) -> str:
    """The GGUF file type of a ``gguf`` method entry (key ``type``, default Q4_K_M)."""
    return check_file_type(str(method.get("type", "Q4_K_M")))


def method_bits(method: dict[str, Any]) -> int:
    """Nominal bits per weight of a ``gguf`` method (its base type's)."""
    return FILE_TYPES[method_file_type(method)][2]
