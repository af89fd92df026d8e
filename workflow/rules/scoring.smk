# Scoring: the benchmark's metrics with bootstrap intervals, paired comparisons with the
# unquantized baseline, and the tidy tables. Relation-extraction datasets resample whole
# sentences or abstracts (the registry's cluster key).


rule score:
    input:
        predictions="results/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        gold=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
    output:
        "results/scores/{model}/{method}/{dataset}/{prompt}.json",
    log:
        "logs/score/{model}/{method}/{dataset}/{prompt}.log",
    conda:
        CONDA_ENV
    params:
        resamples=config["scoring"]["bootstrap_resamples"],
        level=config["scoring"]["ci_level"],
        seed=config["seed"],
    shell:
        "biomedquant score --predictions {input.predictions:q} --gold {input.gold:q}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --method {wildcards.method}"
        " --prompt {wildcards.prompt} --out {output:q} --resamples {params.resamples}"
        " --level {params.level} --seed {params.seed} > {log:q} 2>&1"


rule compare_to_baseline:
    input:
        baseline=f"results/predictions/{{model}}/{BASELINE}/{{dataset}}/{{prompt}}.jsonl",
        predictions="results/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        gold=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
    output:
        "results/comparisons/{model}/{method}/{dataset}/{prompt}.json",
    log:
        "logs/compare_to_baseline/{model}/{method}/{dataset}/{prompt}.log",
    conda:
        CONDA_ENV
    params:
        baseline=BASELINE,
        resamples=config["scoring"]["bootstrap_resamples"],
        level=config["scoring"]["ci_level"],
        seed=config["seed"],
    shell:
        "biomedquant compare --baseline-predictions {input.baseline:q}"
        " --predictions {input.predictions:q} --gold {input.gold:q}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --method {wildcards.method}"
        " --baseline {params.baseline} --prompt {wildcards.prompt} --out {output:q}"
        " --resamples {params.resamples} --level {params.level} --seed {params.seed}"
        " > {log:q} 2>&1"


rule compare_noise_floor:
    input:
        baseline="results/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        predictions="results/noise_floor/predictions/{model}/{method}/{dataset}/{prompt}.jsonl",
        gold=f"resources/datasets/{{dataset}}/{EVAL_SPLIT}.jsonl",
    output:
        "results/noise_floor/comparisons/{model}/{method}/{dataset}/{prompt}.json",
    log:
        "logs/compare_noise_floor/{model}/{method}/{dataset}/{prompt}.log",
    conda:
        CONDA_ENV
    params:
        resamples=config["scoring"]["bootstrap_resamples"],
        level=config["scoring"]["ci_level"],
        seed=config["seed"],
        label=f"{BASELINE}@batch{config['noise_floor'].get('batch_size', 0)}",
    shell:
        "biomedquant compare --baseline-predictions {input.baseline:q}"
        " --predictions {input.predictions:q} --gold {input.gold:q}"
        " --dataset {wildcards.dataset} --model {wildcards.model} --method {params.label}"
        " --baseline {wildcards.method} --prompt {wildcards.prompt} --out {output:q}"
        " --resamples {params.resamples} --level {params.level} --seed {params.seed}"
        " --noise-floor > {log:q} 2>&1"


rule aggregate_scores:
    input:
        score_files(),
    output:
        "results/tables/scores.csv",
    log:
        "logs/aggregate_scores.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind scores --out {output:q} {input:q} > {log:q} 2>&1"


rule aggregate_comparisons:
    input:
        # the noise floor's comparisons (if configured) fill the noise_floor_* columns
        comparison_files() + noise_floor_files(),
    output:
        "results/tables/comparisons.csv",
    log:
        "logs/aggregate_comparisons.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind comparisons --out {output:q} {input:q} > {log:q} 2>&1"


rule aggregate_comparisons_by_label:
    input:
        comparison_files(),
    output:
        "results/tables/comparisons_by_label.csv",
    log:
        "logs/aggregate_comparisons_by_label.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant aggregate --kind comparisons_by_label --out {output:q} {input:q}"
        " > {log:q} 2>&1"
