"""Command-line entry points of the toy-models pipeline (one per Snakemake rule)."""
