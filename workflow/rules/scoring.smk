# Scoring: the benchmark's metrics with bootstrap intervals, then one tidy table.


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
        "biomedquant aggregate --out {output:q} {input:q} > {log:q} 2>&1"
