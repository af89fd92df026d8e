# What a lab without a GPU can serve: speed and memory of every method run on a CPU, beside its
# accuracy change against the 16-bit baseline.

DEPLOYMENT_TARGETS = [
    "results/tables/cpu_deployment.csv",
    figure_paths("cpu_deployment")[0],
]


rule cpu_deployment_table:
    input:
        manifests=evaluation_manifests(),
        comparisons=["results/tables/comparisons.csv"] if COMPARED else [],
        perplexity="results/tables/perplexity.csv",
    output:
        table="results/tables/cpu_deployment.csv",
        png=report_figure("cpu_deployment"),
        pdf=figure_paths("cpu_deployment")[1],
    log:
        "logs/cpu_deployment_table.log",
    conda:
        CONDA_ENV
    shell:
        "biomedquant cpu-deployment --out {output.table:q}"
        " --comparisons={input.comparisons:q} --perplexity={input.perplexity:q}"
        " --figure {output.png:q} {output.pdf:q} --manifests {input.manifests:q}"
        " > {log:q} 2>&1"
