"""Decoding and batching settings, with every default declared once.

A job's outputs depend on how many tokens it may generate, how many chains self-consistency
samples and at what temperature; its speed and memory on how many rows and tokens a batch
holds. These defaults used to be restated by the config schema, the command line, the resource
estimate and each engine, and drifted apart (a hand run of ``biomedquant infer`` had no token
budget while the workflow had one). :class:`Decoding` is the one place: the schema's defaults
are checked against it by a test, the CLI starts from it, the workflow builds it from the
validated config, and the job, the engines and the resource estimate read it.

Per-job values follow from it and from registry facts (the task's benchmark token defaults,
whether a prompting method reasons first or votes): :meth:`Decoding.max_new_tokens_for`,
:meth:`Decoding.samples`, :meth:`Decoding.temperature`, and :meth:`Decoding.sampling`, which
gathers them into the :class:`Sampling` request an engine's ``generate`` receives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from biomedquant.inference.prompting import get_prompt_method
from biomedquant.tasks import TASKS, get_task

# Token budget of one batch: rows x (longest prompt + new tokens). Also the tokens in flight
# the fit estimator sizes the KV cache for (biomedquant.planning.fit_table,
# biomedquant.planning.job_resources).
BATCH_TOKENS = 8192


@dataclass(frozen=True)
class Sampling:
    """What one job asks an engine to generate per prompt, resolved from :class:`Decoding`.

    Greedy when ``samples == 1`` (``temperature`` 0, ``seed`` None); otherwise ``samples``
    chains at ``temperature``. Generation ends at ``max_new_tokens``, an end-of-sequence or
    end-of-turn token, or before the first of the ``stop`` strings.
    """

    max_new_tokens: int
    samples: int = 1
    temperature: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def identity(self) -> dict[str, Any]:
        """The settings that make a generation what it is: part of every generation-cache key
        and of the run record. ``stop`` appears only when there are stop strings, so the keys
        of generations made without any stay what they were."""
        out: dict[str, Any] = {
            "samples": self.samples,
            "temperature": self.temperature,
            "max_new_tokens": self.max_new_tokens,
            "seed": self.seed,
        }
        if self.stop:
            out["stop"] = list(self.stop)
        return out


@dataclass(frozen=True)
class Decoding:
    """Every decoding and batching default of an inference job.

    ``max_new_tokens`` and ``cot_max_new_tokens`` are per-task caps (the config's
    ``inference.max_new_tokens`` and ``inference.cot_max_new_tokens``); a task without a cap
    gets its benchmark default from the task registry. ``sc_samples`` and ``sc_temperature``
    apply to self-consistency prompting only; every other method decodes greedily once.
    ``batch_size`` and ``batch_tokens`` change speed and memory, not what a greedy decode
    means (padding can still flip a near-tie: see the config's noise floor).
    ``continuous_rows`` is the most sequences an engine that batches continuously (vLLM)
    holds at once; ``batch_size`` sizes the static batches of the transformers engine, and a
    continuous batcher needs far more rows to keep a GPU busy (256 is vLLM's own default).
    Its token budget is ``batch_tokens`` either way.
    """

    batch_size: int = 8
    batch_tokens: int = BATCH_TOKENS
    continuous_rows: int = 256
    max_new_tokens: Mapping[str, int] = field(default_factory=dict)
    cot_max_new_tokens: Mapping[str, int] = field(default_factory=dict)
    sc_samples: int = 5
    sc_temperature: float = 0.7

    def __post_init__(self) -> None:
        for name in ("batch_size", "batch_tokens", "continuous_rows", "sc_samples"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(
                    f"decoding setting {name} must be a positive integer, got {value!r}"
                )
        # 0 is what the workflow hands a job that samples no chains.
        if not self.sc_temperature >= 0:
            raise ValueError(f"sc_temperature must be 0 or more, got {self.sc_temperature!r}")
        for name in ("max_new_tokens", "cot_max_new_tokens"):
            for task, cap in getattr(self, name).items():
                get_task(task)  # an unknown task is an error, not a silently unused cap
                if not isinstance(cap, int) or cap < 1:
                    raise ValueError(f"{name}.{task} must be a positive integer, got {cap!r}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Decoding:
        """The settings of a validated config (its ``inference`` and ``prompting`` sections);
        keys the config leaves out keep this class's defaults."""
        inference = config.get("inference") or {}
        prompting = config.get("prompting") or {}
        return cls.from_settings(
            {
                "batch_size": inference.get("batch_size"),
                "batch_tokens": inference.get("batch_tokens"),
                "sc_samples": prompting.get("sc_samples"),
                "sc_temperature": prompting.get("sc_temperature"),
            }
        ).replace(
            max_new_tokens=dict(inference.get("max_new_tokens") or {}),
            cot_max_new_tokens=dict(inference.get("cot_max_new_tokens") or {}),
        )

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Decoding:
        """The settings of one job: the workflow's ``--settings`` object or the CLI's flags.

        Keys: ``batch_size``, ``batch_tokens``, ``sc_samples``, ``sc_temperature`` and
        ``max_new_tokens``, this job's cap (a job has one task and one kind of prompt, so it
        caps every task, direct or chain-of-thought). None, '' or a missing key keeps the
        default.
        """
        known = {"batch_size", "batch_tokens", "sc_samples", "sc_temperature", "max_new_tokens"}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ValueError(f"unknown decoding setting(s) {unknown} (known: {sorted(known)})")
        given = {k: v for k, v in settings.items() if v not in (None, "")}
        cap = given.pop("max_new_tokens", None)
        # The temperature is kept as given (1 stays 1): it is part of every cache key.
        decoding = cls(**{k: int(v) if k != "sc_temperature" else v for k, v in given.items()})
        return decoding if cap is None else decoding.capped(int(cap))

    def replace(self, **changes: Any) -> Decoding:
        """A copy with ``changes`` (validated like a new instance)."""
        return dataclasses.replace(self, **changes)

    def capped(self, max_new_tokens: int) -> Decoding:
        """A copy that caps every task, direct and chain-of-thought, at ``max_new_tokens``."""
        caps = {task: max_new_tokens for task in TASKS}
        return self.replace(max_new_tokens=caps, cot_max_new_tokens=dict(caps))

    def cap(self, task: str, prompt_method: str) -> int | None:
        """The configured cap for ``task`` under ``prompt_method`` (None: the task's default)."""
        cot = get_prompt_method(prompt_method).chain_of_thought
        return (self.cot_max_new_tokens if cot else self.max_new_tokens).get(task)

    def max_new_tokens_for(self, task: str, prompt_method: str) -> int:
        """New tokens a job of ``task`` under ``prompt_method`` may generate: the cap, else the
        task's benchmark default for direct answers or for reasoning first."""
        cap = self.cap(task, prompt_method)
        if cap is not None:
            return cap
        spec = get_task(task)
        cot = get_prompt_method(prompt_method).chain_of_thought
        return spec.cot_max_new_tokens if cot else spec.max_new_tokens

    def samples(self, prompt_method: str) -> int:
        """Chains per prompt: ``sc_samples`` for self-consistency, else one greedy decode."""
        return self.sc_samples if get_prompt_method(prompt_method).self_consistency else 1

    def temperature(self, prompt_method: str) -> float:
        """Sampling temperature: ``sc_temperature`` when sampling several chains, else 0."""
        return self.sc_temperature if self.samples(prompt_method) > 1 else 0.0

    def sampling(
        self, task: str, prompt_method: str, *, seed: int, stop: list[str] | tuple[str, ...] = ()
    ) -> Sampling:
        """The request of one job. ``seed`` counts only when chains are sampled (a greedy
        decode does not depend on it, so it is not part of its identity)."""
        samples = self.samples(prompt_method)
        return Sampling(
            max_new_tokens=self.max_new_tokens_for(task, prompt_method),
            samples=samples,
            temperature=self.temperature(prompt_method),
            seed=seed if samples > 1 else None,
            stop=tuple(stop),
        )
