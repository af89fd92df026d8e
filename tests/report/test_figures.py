"""Figures and the recommendation table on hand-made tables, at demo and at paper scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from biomedquant.analysis.cpu_deployment import CPU_DEPLOYMENT_COLUMNS
from biomedquant.analysis.memory_table import MEMORY_COLUMNS
from biomedquant.analysis.tables import pareto_front, read_memory
from biomedquant.cli import main
from biomedquant.common.files import write_json
from biomedquant.common.gpus import GPU_SIZES_GIB, smallest_gpu
from biomedquant.datasets.registry import DATASETS
from biomedquant.evaluation.scoring import BY_LABEL_COLUMNS
from biomedquant.methods.kinds import bits as method_bits
from biomedquant.planning.fit_table import FIT_COLUMNS
from biomedquant.report.figures.registry import FIGURES, draw_figure
from biomedquant.report.figures.style import Order, order_from_config
from biomedquant.report.pages import write_table_page

from conftest import REPO

PAPER_MODELS = [
    "llama31_8b",
    "llama31_70b",
    "llama33_70b",
    "qwen25_7b",
    "qwen25_14b",
    "qwen25_72b",
    "mistral_7b",
    "gemma2_9b",
    "openbiollm_8b",
    "openbiollm_70b",
    "biomistral_7b",
    "mmed_llama3_8b",
]
# the paper config's methods, as its figures show them (12 models x 11 methods x 5 prompts)
PAPER_CONFIG = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
PAPER_METHODS = list(PAPER_CONFIG["methods"])
PAPER_PROMPTS = ["zero-shot", "one-shot", "five-shot", "cot", "sc-cot"]
BITS = {m: method_bits(spec) for m, spec in PAPER_CONFIG["methods"].items()}
BITS.update({"gptq-w4g64": 4, "gptq-w4g32": 4})
KINDS = {m: spec["kind"] for m, spec in PAPER_CONFIG["methods"].items()}
PRIMARY = {"ner": "f1", "re": "macro_f1", "mlc": "macro_f1", "qa": "accuracy"}


def write_tables(
    folder: Path,
    models: list[str],
    methods: list[str],
    prompts: list[str],
    *,
    seed: int = 0,
    gpu: bool = True,
) -> dict[str, Path]:
    """Scores, comparisons (table and per-run files with resampled differences), per-label
    changes, memory, the fit estimate and CPU deployment in the workflow's formats, with
    plausible values: lower bits lose more, bigger models score higher, some runs are measured
    on a GPU."""
    rng = np.random.default_rng(seed)
    scores, comps, memory, by_label, comp_files = [], [], [], [], []
    fit, cpu = [], []
    for mi, model in enumerate(models):
        size_b = 70.0 if "70" in model or "72" in model else 8.0
        for method in methods:
            bits = BITS.get(method, 4)
            for dataset, spec in DATASETS.items():
                base = 0.4 + 0.3 * (size_b > 10) + 0.05 * rng.random()
                for prompt in prompts:
                    loss = {16: 0.0, 8: 0.003, 4: 0.02, 3: 0.08}.get(bits, 0.02) * rng.uniform(
                        0.5, 1.5
                    )
                    value = min(1.0, base + 0.03 * prompts.index(prompt) - loss)
                    for metric in (PRIMARY[spec.task], "micro_f1"):
                        scores.append(
                            {
                                "model": model,
                                "method": method,
                                "dataset": dataset,
                                "task": spec.task,
                                "prompt": prompt,
                                "metric": metric,
                                "value": value,
                                "ci_low": max(0.0, value - 0.04),
                                "ci_high": min(1.0, value + 0.04),
                                "n": 500,
                                "parse_failure_rate": 0.01,
                                "primary": metric == PRIMARY[spec.task],
                            }
                        )
                        if method == methods[0]:
                            continue
                        diff = -loss
                        comps.append(
                            {
                                "model": model,
                                "method": method,
                                "baseline": methods[0],
                                "dataset": dataset,
                                "task": spec.task,
                                "prompt": prompt,
                                "metric": metric,
                                "baseline_value": value + loss,
                                "value": value,
                                "diff": diff,
                                "diff_ci_low": diff - 0.015,
                                "diff_ci_high": diff + 0.015,
                                "p_value": 0.01 if loss > 0.03 else 0.4,
                                "flip_rate": min(1.0, 2 * loss + 0.02),
                                "n": 500,
                                "primary": metric == PRIMARY[spec.task],
                            }
                        )
                    if method == methods[0]:
                        continue
                    path = folder / "comparisons" / model / method / dataset / f"{prompt}.json"
                    write_json(
                        path,
                        {
                            **{k: comps[-1][k] for k in ("model", "method", "baseline")},
                            **{"dataset": dataset, "task": spec.task, "prompt": prompt},
                            "primary_metric": PRIMARY[spec.task],
                            "metrics": {PRIMARY[spec.task]: {"diff": -loss}},
                            "primary_diff_draws": list(rng.normal(-loss, 0.0075, 200)),
                        },
                    )
                    comp_files.append(path)
                    if spec.task in ("re", "mlc"):
                        for k, label in enumerate(spec.labels):
                            d = -loss * (1 + k % 3)
                            by_label.append(
                                {
                                    **{k2: comps[-1][k2] for k2 in ("model", "method")},
                                    **{"baseline": methods[0], "dataset": dataset},
                                    **{"task": spec.task, "prompt": prompt, "label": label},
                                    **{"support": 10 + 7 * k, "baseline_f1": 0.6, "f1": 0.6 + d},
                                    **{"diff": d, "diff_ci_low": d - 0.03},
                                    **{"diff_ci_high": d + 0.03, "p_value": 0.2},
                                }
                            )
            est_w = size_b * 2 * bits / 16 * 1.07
            measured = gpu and mi % 2 == 0
            memory.append(
                {
                    "model": model,
                    "method": method,
                    "kind": "none" if method == methods[0] else KINDS.get(method, "gptq"),
                    "bits": bits,
                    "params_b": size_b,
                    "est_weights_gb": est_w,
                    "est_total_gb": est_w * 1.05 + 2.1,
                    "measured": measured,
                    "device": "cuda" if measured else "cpu",
                    "weights_gb": est_w * 0.98,
                    "peak_gpu_allocated_gb": est_w * 1.03 + 1.5 if measured else "",
                    "peak_gpu_reserved_gb": est_w * 1.08 + 1.5 if measured else "",
                    "peak_host_rss_gb": 3.2,
                    "size_on_disk_gb": est_w,
                    "weights_ratio_to_baseline": bits / 16,
                    "disk_ratio_to_baseline": bits / 16,
                    "smallest_gpu_gb": smallest_gpu(est_w * 1.05 + 2.1) or "",
                }
            )
            total = est_w * 1.05 + 2.1
            fit.append(
                {
                    **{k: memory[-1][k] for k in ("model", "method", "kind", "bits", "params_b")},
                    **{"weights_gb": est_w, "kv_cache_gb": 2.0, "overhead_gb": 0.1},
                    **{"total_gb": total, "tokens_in_flight": 8192},
                    "smallest_gpu_gb": smallest_gpu(total) or "",
                    **{
                        f"fits_{g}gb": smallest_gpu(total) is not None and smallest_gpu(total) <= g
                        for g in GPU_SIZES_GIB
                    },
                }
            )
            llama = method != methods[0] and mi % 2 == 0
            cpu.append(
                {
                    **{k: memory[-1][k] for k in ("model", "method", "kind")},
                    "engine": "llama_cpp" if llama else "transformers",
                    **{"cpu_threads": 2, "n_runs": 8},
                    "prompt_tokens_per_second": 40.0 * 16 / bits if llama else "",
                    "generation_tokens_per_second": 3.0 * 16 / bits,
                    "generation_includes_prompt": not llama,
                    **{"peak_host_rss_gb": est_w * 1.1, "size_on_disk_gb": est_w},
                    "mean_primary_change": "" if method == methods[0] else -0.01 * (16 / bits),
                }
            )
    paths = {}
    for name, rows, cols in (
        ("scores", scores, None),
        ("comparisons", comps, None),
        ("memory", memory, list(MEMORY_COLUMNS)),
        ("comparisons_by_label", by_label, list(BY_LABEL_COLUMNS)),
        ("fit", fit, list(FIT_COLUMNS)),
        ("cpu_deployment", cpu, list(CPU_DEPLOYMENT_COLUMNS)),
    ):
        paths[name] = folder / f"{name}.csv"
        pd.DataFrame(rows, columns=cols).to_csv(paths[name], index=False)
    paths["comparison_files"] = comp_files
    return paths


def _assert_png(path: Path, ink: float = 0.01) -> None:
    from matplotlib.image import imread

    img = imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 400
    # not a blank canvas: a share of the pixels is not white
    assert (img[..., :3].mean(axis=2) < 0.95).mean() > ink


@pytest.mark.parametrize(
    ("scale", "models", "methods", "prompts"),
    [
        ("demo", ["smollm2_135m"], ["none", "gptq-w4g64"], ["zero-shot", "five-shot"]),
        ("paper", PAPER_MODELS, PAPER_METHODS, PAPER_PROMPTS),
    ],
)
def test_every_figure_draws_at_demo_and_paper_scale(tmp_path, scale, models, methods, prompts):
    tables = write_tables(tmp_path, models, methods, prompts)
    tables["recommendation"] = tmp_path / "recommendation.csv"
    tables["evidence"] = tmp_path / "evidence.csv"
    main(
        [
            "recommend",
            "--memory",
            str(tables["memory"]),
            "--margin",
            "1.0",
            "--out",
            str(tables["recommendation"]),
            "--evidence-out",
            str(tables["evidence"]),
            *("--hardware", "a100_40g", "--hardware", "2xh100", "--hardware", "cpu"),
            *("--deployment-out", str(tmp_path / "deployment_choice.csv")),
            *map(str, tables["comparison_files"]),
        ]
    )
    tables["deployment_choice"] = tmp_path / "deployment_choice.csv"
    order = Order(tuple(methods), tuple(models), tuple(prompts), "none")
    if scale == "paper":  # the names and family colours the workflow passes
        order = order_from_config({**PAPER_CONFIG, "prompts": prompts})
    # PDF at demo scale only: the same drawing, and the paper-scale figures are slow to lay out
    exts = ("png", "pdf") if scale == "demo" else ("png",)
    from matplotlib.image import imread

    from biomedquant.report.figures.style import MAX_PIXELS

    for name in FIGURES:
        outs = [tmp_path / f"{name}.{ext}" for ext in exts]
        draw_figure(name, tables, outs, order=order)
        _assert_png(outs[0])
        # within what the report (and a browser) shows at full size
        assert max(imread(outs[0]).shape[:2]) <= MAX_PIXELS, name
        if scale == "demo":
            assert outs[1].read_bytes().startswith(b"%PDF")


def test_cli_plot_passes_the_config_order(tmp_path):
    tables = write_tables(tmp_path, ["b_model", "a_model"], ["none", "gptq-w4g128"], ["zero-shot"])
    out = tmp_path / "scores.png"
    rc = main(
        [
            "plot",
            "scores_by_dataset",
            "--scores",
            str(tables["scores"]),
            "--order",
            '{"models": ["b_model", "a_model"], "methods": ["none", "gptq-w4g128"]}',
            "--out",
            str(out),
        ]
    )
    assert rc == 0 and out.stat().st_size > 10_000
    assert main(["plot", "memory", "--out", str(out)]) == 1  # needs --memory


def test_cli_offers_every_figure():
    from biomedquant.cli import build_parser

    plot = build_parser()._subparsers._group_actions[0].choices["plot"]
    figure_arg = next(a for a in plot._actions if a.dest == "figure")
    assert set(figure_arg.choices) == set(FIGURES)


def test_no_data_gives_a_figure_that_says_so(tmp_path):
    empty = tmp_path / "comparisons.csv"
    empty.write_text(
        "model,method,baseline,dataset,task,prompt,metric,baseline_value,value,diff,"
        "diff_ci_low,diff_ci_high,p_value,flip_rate,n,primary\n"
    )
    for name in ("change_heatmap", "flip_rate"):
        out = tmp_path / f"{name}.png"
        draw_figure(name, {"comparisons": empty}, [out])
        _assert_png(out, ink=0.002)
    memory = tmp_path / "memory.csv"
    memory.write_text(",".join(MEMORY_COLUMNS) + "\n")
    draw_figure("memory", {"memory": memory}, [tmp_path / "memory.png"])
    _assert_png(tmp_path / "memory.png", ink=0.002)


def test_memory_prefers_the_gpu_measurement_and_marks_estimates(tmp_path):
    tables = write_tables(tmp_path, ["m0", "m1"], ["none", "gptq-w4g128"], ["zero-shot"])
    mem = read_memory(tables["memory"])
    m0 = mem[mem["model"] == "m0"]  # even model index: measured on a GPU
    m1 = mem[mem["model"] == "m1"]
    assert (m0["memory_source"] == "measured").all()
    assert np.allclose(m0["memory_gb"], m0["peak_gpu_allocated_gb"].astype(float))
    assert (m1["memory_source"] == "estimated").all()
    assert np.allclose(m1["memory_gb"], m1["est_total_gb"])


def test_cpu_only_memory_table_draws_the_estimate_check_with_a_note(tmp_path):
    tables = write_tables(tmp_path, ["m0"], ["none", "gptq-w4g128"], ["zero-shot"], gpu=False)
    out = tmp_path / "check.png"
    draw_figure("memory_estimate_check", tables, [out])
    _assert_png(out)


def test_pareto_front_keeps_what_no_cheaper_run_beats():
    points = [(1.0, 0.5), (2.0, 0.4), (2.0, 0.7), (4.0, 0.7), (8.0, 0.9)]
    assert pareto_front(points) == [0, 2, 4]


def test_order_keeps_config_order_colours_and_puts_the_baseline_first():
    df = pd.DataFrame({"method": ["gptq-w4", "none", "extra"], "model": ["m", "m", "m"]})
    order = Order(methods=("gptq-w8", "gptq-w4"), baseline="none").with_data(df)
    assert order.methods == ("none", "gptq-w8", "gptq-w4", "extra")
    # a method keeps its colour whether or not another method is in a figure's data
    assert order.color("gptq-w4") == Order(("none", "gptq-w8", "gptq-w4"), baseline="none").color(
        "gptq-w4"
    )
    assert order.color("none") != order.color("gptq-w8") != order.color("gptq-w4")


def test_table_pages_hold_the_table_and_the_csv(tmp_path):
    tables = write_tables(tmp_path, ["m0"], ["none", "gptq-w4g128"], ["zero-shot"])
    for kind in ("scores", "comparisons", "memory"):
        out = tmp_path / f"{kind}.html"
        write_table_page(kind, tables[kind], out)
        text = out.read_text()
        assert "<table" in text and f'download="{kind}.csv"' in text
    assert "MedQA" in (tmp_path / "scores.html").read_text()
    rec, ev = tmp_path / "recommendation.csv", tmp_path / "recommendation_evidence.csv"
    main(
        [
            "recommend",
            *("--memory", str(tables["memory"])),
            *("--out", str(rec), "--evidence-out", str(ev)),
            *map(str, tables["comparison_files"]),
        ]
    )
    out = tmp_path / "recommendation.html"
    main(
        ["report-table", "--kind", "recommendation", "--table", str(rec), "--evidence", str(ev)]
        + ["--out", str(out)]
    )
    text = out.read_text()
    assert (
        "<h3>m0</h3>" in text
        and "Evidence" in text
        and 'download="recommendation_evidence.csv"' in text
    )


def test_registry_names_a_caption_a_category_and_known_tables_for_every_figure():
    import inspect

    from biomedquant.report.figures.registry import TABLES, figure_paths

    from conftest import REPO

    about = (REPO / "workflow/report/workflow.rst").read_text()
    for name, spec in FIGURES.items():
        assert (REPO / "workflow/report" / spec.caption).is_file(), name
        assert f'"{spec.category}"' in about, (name, spec.category)  # landing page lists it
        assert set(spec.inputs) <= set(TABLES), name
        params = inspect.signature(spec.draw).parameters
        positional = [p for p in params.values() if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(positional) == len(spec.inputs) + 1 and "order" in params, name
        assert figure_paths(name)[0] == f"results/figures/{name}.png"


def test_workflow_figures_follow_the_registry():
    from biomedquant.report.figures.registry import figure_rule_names

    alone = figure_rule_names(compared=False)
    assert "scores_by_dataset" in alone and "change_heatmap" not in alone
    every = figure_rule_names(compared=True)
    assert set(alone) < set(every)
    # drawn beside their own tables by planning.smk and analysis.smk, not by figure rules
    assert {"fit", "cpu_deployment"} <= set(FIGURES) - set(every)


def test_one_set_of_gpu_sizes_for_the_fit_table_the_recommendation_and_the_figures():
    from biomedquant.report.figures.style import GPU_LINES_GB

    assert [gib for gib, _ in GPU_LINES_GB] == list(GPU_SIZES_GIB)
    assert [c for c in FIT_COLUMNS if c.startswith("fits_")] == [
        f"fits_{g}gb" for g in GPU_SIZES_GIB
    ]
    # marketed "40 GB" is 40 GiB = 42.95 GB, 90% of it 38.65: the line sits where the table's
    # column switches
    forty = dict(GPU_LINES_GB)[40]
    assert forty == pytest.approx(0.9 * 42.95, abs=0.01)
    assert smallest_gpu(forty - 1e-6) == 40 and smallest_gpu(forty + 0.01) == 48


def test_the_recommendation_reads_the_tables_without_the_plotting_code():
    import subprocess
    import sys

    code = (
        "import sys, biomedquant.analysis.recommendation, biomedquant.planning.fit_table; "
        "print(sorted(m for m in sys.modules"
        " if m.startswith(('matplotlib', 'biomedquant.report'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fit_figure_takes_the_baseline_and_order_from_its_table(tmp_path):
    from biomedquant.report.figures.style import BASELINE_COLOR, order_from_rows

    tables = write_tables(tmp_path, ["b_model", "a_model"], ["base", "gptq-w4g128"], ["zero-shot"])
    fit = pd.read_csv(tables["fit"])
    fit["kind"] = np.where(fit["method"] == "base", "none", "gptq")
    order = order_from_rows(fit)
    assert order.models == ("b_model", "a_model") and order.baseline == "base"
    assert order.color("base") == BASELINE_COLOR != order.color("gptq-w4g128")
    fit.to_csv(tables["fit"], index=False)
    main(["plot", "fit", "--fit", str(tables["fit"]), "--out", str(tmp_path / "fit.png")])
    _assert_png(tmp_path / "fit.png")


def test_plan_figure_without_its_table_is_a_one_line_error(capsys):
    from conftest import REPO

    args = ["plan", "--config", str(REPO / "config/config.yaml"), "--figure", "fit.png"]
    assert main(args) == 1
    assert "give --out too" in capsys.readouterr().err


def test_no_two_methods_share_a_colour_at_the_papers_scale_and_beyond():
    """The paper config's ten quantized methods each get their own colour (the palette used to
    repeat after eight: gguf-q4_k_m drew in gptq-w8g128's blue), and so would 300; none is the
    baseline's grey, and the first eight stay Okabe-Ito."""
    import yaml

    from biomedquant.report.figures.style import (
        BASELINE_COLOR,
        OKABE_ITO,
        method_color,
        order_from_config,
    )

    from conftest import REPO

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    order = order_from_config(paper)
    colors = [order.color(m) for m in order.methods]
    assert len(set(colors)) == len(colors) == len(paper["methods"])
    assert colors.count(BASELINE_COLOR) == 1
    many = [method_color(i) for i in range(300)]
    assert len(set(many)) == 300 and BASELINE_COLOR not in many
    assert many[:8] == list(OKABE_ITO)


def test_a_method_family_is_one_hue_in_shades_darker_with_fewer_bits():
    import colorsys

    import yaml

    from biomedquant.report.figures.style import FAMILY_HUES, order_from_config

    from conftest import REPO

    def hls(color: str) -> tuple[float, float, float]:
        return colorsys.rgb_to_hls(*(int(color[i : i + 2], 16) / 255 for i in (1, 3, 5)))

    for name in ("paper.yaml", "methods.yaml"):
        config = yaml.safe_load((REPO / "config" / name).read_text())
        order = order_from_config(config)
        by_family: dict[str, list[tuple[int, str]]] = {}
        for method, family, n_bits in order.families:
            if method != order.baseline:
                by_family.setdefault(family, []).append((n_bits, order.color(method)))
        assert set(by_family) <= set(FAMILY_HUES)
        hues = {}
        for family, members in by_family.items():
            family_hues = {round(hls(c)[0], 2) for _, c in members}
            assert len(family_hues) == 1, (family, members)  # one hue
            hues[family] = family_hues.pop()
            members.sort(reverse=True)  # most bits first: lightest
            lightness = [hls(c)[1] for _, c in members]
            assert lightness == sorted(lightness, reverse=True), (family, members)
        assert len(set(hues.values())) == len(hues)  # families apart
        colors = [order.color(m) for m in order.methods]
        assert len(set(colors)) == len(colors)
    # a table's own rows (the fit and CPU tables) give the same colours as the config
    from biomedquant.report.figures.style import order_from_rows

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    from biomedquant.methods.kinds import bits

    rows = pd.DataFrame(
        [
            {"model": "m", "method": m, "kind": spec["kind"], "bits": bits(spec)}
            for m, spec in paper["methods"].items()
        ]
    )
    assert [order_from_rows(rows).color(m) for m in paper["methods"]] == [
        order_from_config(paper).color(m) for m in paper["methods"]
    ]


def test_the_domain_figure_compares_biomedical_and_general_models_of_one_size_class(tmp_path):
    from biomedquant.report.figures.domain import comparable_classes

    paper = order_from_config(PAPER_CONFIG)
    classes = comparable_classes(paper)
    assert set(classes) == {"7-14B", "70B+"}
    assert classes["70B+"] == {
        "general": ["llama31_70b", "llama33_70b", "qwen25_72b"],
        "biomedical": ["openbiollm_70b"],
    }
    # a config with one kind of model cannot show the claim: the figure says so
    demo = Order(("none", "gptq-w4g64"), ("smollm2_135m",), ("zero-shot",), "none")
    assert comparable_classes(demo) == {}
    tables = write_tables(tmp_path, ["smollm2_135m"], ["none", "gptq-w4g64"], ["zero-shot"])
    draw_figure("domain_edge", tables, [tmp_path / "domain.png"], order=demo)
    _assert_png(tmp_path / "domain.png", ink=0.002)


def test_legends_show_the_names_a_reader_knows():
    """Display names from the method registry in the order every figure gets (slugs stay in
    file names); two methods that would read alike keep their slugs."""
    import yaml

    from biomedquant.report.figures.draw import legend_handles
    from biomedquant.report.figures.style import order_from_config, order_from_json, order_to_json

    from conftest import REPO

    paper = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    order = order_from_json(order_to_json(order_from_config(paper)))
    labels = [h.get_label() for h in legend_handles(order, order.methods)]
    assert labels[:5] == ["16-bit", "GPTQ 8-bit, g128", "GPTQ 4-bit, g128", "GPTQ 3-bit, g128",
                          "RTN 4-bit, g128"]  # fmt: skip
    assert {"bitsandbytes NF4", "AWQ 4-bit, g128", "GGUF Q4_K_M", "FP8"} <= set(labels)
    methods = yaml.safe_load((REPO / "config" / "methods.yaml").read_text())
    names = dict(order_from_config(methods).names)
    assert names["gptq-w4g64-indomain"] == "GPTQ 4-bit, g64 (gptq-w4g64-indomain)"
    assert order.name("unknown-method") == "unknown-method"
