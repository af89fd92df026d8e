"""biomedquant: measure what quantization costs LLMs on biomedical NLP benchmarks.

Every stage of the Snakemake workflow is one function of this package, reachable through the
``biomedquant`` command line; notebooks and tests call the same functions.
"""

__version__ = "0.1.0"
