# Evaluation (biomedquant.evaluation): the answers read from the raw outputs, the benchmark's
# metrics with bootstrap intervals, paired comparisons with the unquantized baseline, and the
# tidy tables. Relation-extraction datasets resample whole sentences or abstracts (the
# registry's cluster key).


# One CPU job per model x method reads the answers of every dataset's and prompting method's
# raw outputs, scores them and compares them with the baseline's (biomedquant.evaluation.job): a
# parser or scoring change reruns these jobs and never inference. Grouped rather than one job
# per run and file, so that a study of thousands of inference jobs plans in seconds (its
# outputs are one folder per stage, holding a file per dataset x prompting method). Each
# writes a manifest of its files; the tables read the manifests (biomedquant.evaluation.job).


rule evaluate_baseline:
    input:
        **noise_floor_inputs(),
        generations=layout.GENERATIONS_DIR.replace("{method}", BASELINE_PATTERN),
        gold=layout.STUDY_DATA,
    output:
        **noise_floor_outputs(),
        predictions=stage_dir(layout.PREDICTIONS_DIR, BASELINE_PATTERN),
        scores=stage_dir(layout.SCORES_DIR, BASELINE_PATTERN),
        manifest=layout.MANIFEST.replace("{method}", BASELINE_PATTERN),
    log:
        f"logs/evaluate/{{model}}/{BASELINE_PATTERN}.log",
    conda:
        CONDA_ENV
    params:
        settings=evaluate_settings,
        code=EVALUATION_CODE,
    shell:
        "biomedquant evaluate --settings {params.settings:q} > {log:q} 2>&1"


if STUDY.baseline is not None:

    rule evaluate:
        input:
            generations=layout.GENERATIONS_DIR,
            # the baseline's parsed predictions, through its manifest (written after them)
            baseline=layout.MANIFEST.replace("{method}", STUDY.baseline),
            gold=layout.STUDY_DATA,
        output:
            predictions=stage_dir(layout.PREDICTIONS_DIR),
            scores=stage_dir(layout.SCORES_DIR),
            comparisons=stage_dir(layout.COMPARISONS_DIR),
            manifest=layout.MANIFEST,
        log:
            "logs/evaluate/{model}/{method}.log",
        wildcard_constraints:
            method=STUDY.quantized_methods_pattern,
        conda:
            CONDA_ENV
        params:
            settings=evaluate_settings,
            code=EVALUATION_CODE,
        shell:
            "biomedquant evaluate --settings {params.settings:q} > {log:q} 2>&1"


rule aggregate_scores:
    input:
        STUDY.evaluation_manifests(),
    output:
        "results/tables/scores.csv",
    log:
        "logs/aggregate_scores.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind scores --out {output:q} --manifests {input:q}"
        " > {log:q} 2>&1"


rule aggregate_comparisons:
    input:
        STUDY.evaluation_manifests(),
    output:
        "results/tables/comparisons.csv",
    log:
        "logs/aggregate_comparisons.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind comparisons --out {output:q} --manifests {input:q}"
        " > {log:q} 2>&1"


rule aggregate_comparisons_by_label:
    input:
        STUDY.evaluation_manifests(),
    output:
        "results/tables/comparisons_by_label.csv",
    log:
        "logs/aggregate_comparisons_by_label.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind comparisons_by_label --out {output:q}"
        " --manifests {input:q}"
        " > {log:q} 2>&1"
