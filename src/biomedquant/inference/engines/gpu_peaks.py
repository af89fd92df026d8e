"""Peak GPU memory of the batches that ran, without the attempts that ran out of memory.

torch's peak counters (``max_memory_allocated``, ``max_memory_reserved``) hold the highest
figure since their last reset. After a batch that ran out of memory they hold about the GPU's
capacity: what failed, not what the run needs, and a run that hit one such batch would record
the whole GPU as its peak. The transformers engine, which retries such a batch as two halves,
calls :meth:`GpuPeaks.keep` after every batch that ran and :meth:`GpuPeaks.forget_failed`
after one that did not (which resets the counters); a run's peak is the larger of what was
kept and the counters since. The load is counted too: the counters are reset just before it.
"""

from __future__ import annotations

from typing import Any

KINDS = ("allocated", "reserved")


def _counter(kind: str) -> Any:
    import torch

    if kind == "allocated":
        return torch.cuda.max_memory_allocated
    return torch.cuda.max_memory_reserved


class GpuPeaks:
    """Peaks per visible GPU, kept across out-of-memory retries (none without a GPU)."""

    def __init__(self, devices: int | None = None) -> None:
        if devices is None:
            import torch

            devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
        self.devices = devices
        self._kept = {kind: [0] * devices for kind in KINDS}
        self.failed_attempts = 0

    def keep(self) -> None:
        """After a batch that ran: its peaks count."""
        for kind in KINDS:
            read = _counter(kind)
            for i in range(self.devices):
                self._kept[kind][i] = max(self._kept[kind][i], int(read(i)))

    def forget_failed(self) -> None:
        """After a batch that ran out of memory: reset the counters, so that its attempt
        does not count (what ran before it was kept)."""
        import torch

        self.failed_attempts += 1
        for i in range(self.devices):
            torch.cuda.reset_peak_memory_stats(i)

    def total(self, kind: str) -> int | None:
        """The peak of ``kind`` (allocated or reserved) summed over the GPUs (a model spread
        over several holds part of itself on each), or None without a GPU."""
        if not self.devices:
            return None
        read = _counter(kind)
        return sum(max(self._kept[kind][i], int(read(i))) for i in range(self.devices))
