"""The rehearsal command: a study config checked end to end in minutes, before GPU time."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml


def rehearsal_env(hf_home: Path) -> dict[str, str]:
    """The environment the rehearsal's workflow runs in: its own Hugging Face cache, offline
    (the stand-ins resolve from the cache, as a pre-filled cache resolves for a user)."""
    env = {k: v for k, v in os.environ.items() if k != "HUGGINGFACE_HUB_CACHE"}
    # HF_HUB_CACHE, when a lab sets it to a shared cache, would win over HF_HOME
    return {
        **env,
        "HF_HOME": str(hf_home),
        "HF_HUB_CACHE": str(hf_home / "hub"),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }


def gpu_slots(cores: int) -> int:
    """What the rehearsal gives Snakemake as ``--resources gpu=N``: the visible CUDA GPUs, or
    on a machine without one the cores. ``gpu`` guards a device that one job at a time may
    use; with no GPU every GPU-class job (quantize, infer, perplexity) runs on the CPU with
    ``cpu_threads`` threads, so queueing them behind one fictitious GPU would leave the other
    cores idle. It changes which jobs run at once, never what they compute."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else max(1, cores)


def snakemake_command(out: Path, cores: int, extra: list[str]) -> list[str]:
    """The Snakemake command line of a rehearsal in ``out`` (its GPUs: :func:`gpu_slots`)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "--configfile",
        str(out / "config.yaml"),
        "--directory",
        str(out / "run"),
        "--cores",
        str(cores),
        "--resources",
        f"gpu={gpu_slots(cores)}",
        *extra,
    ]


def _cmd_rehearse(args: argparse.Namespace) -> int:
    from biomedquant.study.rehearsal.config import write_rehearsal

    if args.run and not Path("Snakefile").is_file():
        raise ValueError("rehearse --run: run it from the project's root (no Snakefile here)")
    study = yaml.safe_load(Path(args.config).read_text("utf-8"))
    out = Path(args.out).resolve()
    rehearsal = write_rehearsal(study, out, limit=args.limit, every_model=args.every_model)
    summary = rehearsal.summary()
    print(f"rehearsal of {args.config}: {out / 'config.yaml'}")
    for model, family in summary["models"].items():
        covered = [s for s, r in summary["stand_ins"].items() if r == model and s != model]
        also = f" (stands in for {', '.join(covered)} too)" if covered else ""
        print(f"  model {model}: tiny {family} stand-in{also}")
    print(f"  methods run: {', '.join(summary['methods_run'])}")
    for method, reason in summary["methods_skipped"].items():
        print(f"  method {method}: skipped, {reason}")
    print(f"  data: {summary['data']}")
    for note in summary["notes"]:
        print(f"  {note}")
    command = snakemake_command(out, args.cores or os.cpu_count() or 1, args.snakemake_args)
    shown = f"HF_HOME={rehearsal.hf_home} HF_HUB_OFFLINE=1 " + " ".join(command[3:])
    if not args.run:
        print(f"run it with:\n  biomedquant rehearse --run ...  (or: snakemake {shown})")
        return 0
    print(f"running: snakemake {shown}", flush=True)
    return subprocess.run(command, env=rehearsal_env(rehearsal.hf_home)).returncode


def add_commands(sub: Any) -> None:
    """Register the rehearsal's subcommand."""
    s = sub.add_parser(
        "rehearse",
        help="run a study config end to end on tiny stand-in models, before booking GPUs",
    )
    s.add_argument("--config", default="config/paper.yaml", help="the study config")
    s.add_argument("--out", default=".test/rehearsal", help="where its config, models and run go")
    s.add_argument("--limit", type=int, default=2, help="items per dataset")
    s.add_argument(
        "--every-model",
        action="store_true",
        help="a stand-in for every model (default: one per model family)",
    )
    s.add_argument("--run", action="store_true", help="run the workflow on it now")
    s.add_argument(
        "--cores", type=int, default=None, help="Snakemake's --cores (default: every core here)"
    )
    s.add_argument("snakemake_args", nargs="*", help="more Snakemake arguments (after --)")
    s.set_defaults(func=_cmd_rehearse)
