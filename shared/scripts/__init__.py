"""Command-line entry points of the shared language-model pipeline (one per DAG rule)."""
