"""Command-line entry points of the steering pipeline (one per Snakemake rule)."""
