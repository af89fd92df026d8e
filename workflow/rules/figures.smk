# Figures from the score table (added to `snakemake --report` with their captions).


rule figure_scores_by_dataset:
    input:
        "results/tables/scores.csv",
    output:
        png=report(
            "results/figures/scores_by_dataset.png",
            caption="../report/scores_by_dataset.rst",
            category="Scores",
        ),
        pdf="results/figures/scores_by_dataset.pdf",
    log:
        "logs/figures/scores_by_dataset.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant figures --table {input:q} --out {output.png:q} {output.pdf:q} > {log:q} 2>&1"
