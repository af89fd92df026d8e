"""Calibration data for quantizers that need it (GPTQ, AWQ, a GGUF importance matrix): sources
of text, and the windows of exactly ``seq_len`` tokens cut from them. ``generic_en.txt`` is the
shipped English text."""

from biomedquant.datasets.texts import record_text
from biomedquant.quantization.calibration.sources import (
    CalibrationError,
    generic_calibration_texts,
    in_domain_texts,
)
from biomedquant.quantization.calibration.windows import (
    calibration_windows,
    check_rank,
    checked_windows,
    pack_windows,
    widest_linear_input,
)

__all__ = [
    "CalibrationError",
    "calibration_windows",
    "check_rank",
    "checked_windows",
    "generic_calibration_texts",
    "in_domain_texts",
    "pack_windows",
    "record_text",
    "widest_linear_input",
]
