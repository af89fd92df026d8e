"""The interface every engine offers the inference job: load, generate, close.

The job (:mod:`biomedquant.inference.job`) builds prompts, resumes, caches and records; an engine
only turns prompts into text. Three engines implement this: transformers (any device),
vLLM (CUDA GPUs, optional) and llama.cpp (GGUF files). Keeping the surface this small is what
lets a new engine arrive as one module plus one registry line (see
:mod:`biomedquant.inference.engines`).

An engine's ``generate`` returns, per prompt and in input order, a :data:`Generation`:
``outputs`` (one text per sample, stripped, cut before a stop string), ``stop_reasons`` (one
per sample, in the vocabulary of :func:`cut_at_stop`), ``n_prompt_tokens`` and
``n_new_tokens`` (summed over samples). It hands each finished group of prompts to
``on_batch`` ({prompt index: generation}) as soon as it is done, so the job can persist it,
advances ``progress`` (a tqdm bar) by the prompts done, and fills ``stats`` with what the run
record reports about batching (``batches``, ``largest_batch``, ``oom_retries``, and optionally
``engine_metrics``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from biomedquant.inference.decoding import Decoding, Sampling

if TYPE_CHECKING:
    from typing import Self  # Python 3.11+; annotations are not evaluated at run time

Generation = dict[str, Any]
OnBatch = Callable[[dict[int, Generation]], None]


class EngineUnavailable(RuntimeError):
    """The selected engine cannot run here (a missing package or device)."""


class Engine(Protocol):
    """A loaded model that generates text for prompts."""

    name: ClassVar[str]
    # How sampled chains are seeded from the job's seed, when not as the transformers engine
    # does it (torch's global seed, set once per job): recorded with every sampled generation
    # (its cache key and the run record's ``decoding``), so generations seeded another way
    # never share a key. Empty for the transformers engine, whose keys stay as they were.
    sampled_seeding: ClassVar[str]
    tokenizer: Any  # the model's Hugging Face tokenizer
    info: dict[str, Any]  # load facts for the run record (device, dtypes, sizes, load time)

    @classmethod
    def load(
        cls, model_dir: str | Path, method: dict[str, Any], decoding: Decoding, *, gpus: int = 1
    ) -> Self:
        """Load the artifact in ``model_dir`` as ``method`` says; ``decoding`` holds the batch
        shape (rows, token budget) the engine may plan for at load time. ``gpus`` is how many
        GPUs the job was given (the scheduler's ``gpu`` resource; 0: none, run on the CPU):
        the engine uses those and no more, and records the number it used as ``info["gpus"]``.
        It changes speed, not generations, so it is in no cache key."""
        ...

    def generate(
        self,
        prompts: list[str],
        sampling: Sampling,
        *,
        on_batch: OnBatch | None = None,
        stats: dict[str, Any] | None = None,
        progress: Any = None,
    ) -> list[Generation]:
        """Generations for ``prompts`` in input order (see the module docstring)."""
        ...

    def close(self) -> None:
        """Free the model (GPU memory included) so another engine can load in this process."""
        ...


def decoding_identity(sampling: Sampling, engine: type[Engine]) -> dict[str, Any]:
    """What makes a generation what it is (:meth:`Sampling.identity`), with ``seeding`` when
    chains are sampled by an engine that declares its own seeding."""
    identity = sampling.identity()
    if sampling.samples > 1 and engine.sampled_seeding:
        identity["seeding"] = engine.sampled_seeding
    return identity


def cut_at_stop(text: str, stop: list[str] | tuple[str, ...], *, ended: bool) -> tuple[str, str]:
    """``text`` before its first stop string, and why generation stopped: ``stop_string``,
    ``end_of_turn`` (an end-of-sequence or end-of-turn token, ``ended``) or ``length``."""
    hits = [i for i in (text.find(s) for s in stop) if i >= 0]
    if hits:
        return text[: min(hits)], "stop_string"
    return text, "end_of_turn" if ended else "length"
