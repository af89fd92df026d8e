# Benchmark files: download (hash-checked) and normalize into JSON Lines.


rule download_dataset:
    output:
        raw=layout.raw_split("{dataset}", "{split}"),
        provenance=layout.raw_split("{dataset}", "{split}") + ".provenance.json",
    log:
        "logs/download_dataset/{dataset}/{split}.log",
    conda:
        CONDA_ENV
    params:
        base_url=config["data"]["base_url"],
    shell:
        "biomedquant download --dataset {wildcards.dataset} --split {wildcards.split}"
        " --base-url {params.base_url:q} --out {output.raw:q}"
        " --lock resources/raw/checksums.lock > {log:q} 2>&1"


rule prepare_dataset:
    input:
        layout.raw_split("{dataset}", "{split}"),
    output:
        data=layout.prepared_split("{dataset}", "{split}"),
        provenance=layout.prepared_split("{dataset}", "{split}") + ".provenance.json",
    log:
        "logs/prepare_dataset/{dataset}/{split}.log",
    conda:
        CONDA_ENV
    params:
        limit=prepare_limit,
        seed=config["seed"],
    shell:
        "biomedquant prepare --dataset {wildcards.dataset} --split {wildcards.split}"
        " --raw {input:q} --out {output.data:q} --limit {params.limit} --seed {params.seed}"
        " > {log:q} 2>&1"


# Every prepared split the study evaluates or draws examples from, with its hash, in one file:
# the input of each job that reads all datasets (inference, perplexity, evaluate), so that
# Snakemake plans one edge per job rather than one per dataset and pool.
rule study_data:
    input:
        STUDY.gold_files(),
        STUDY.study_pools(),
    output:
        layout.STUDY_DATA,
    log:
        "logs/study_data.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant study-data --out {output:q} {input:q} > {log:q} 2>&1"
