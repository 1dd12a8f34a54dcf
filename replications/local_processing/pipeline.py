"""Figures of the local-processing replication (name -> what it shows); read by the Snakefile and DVC."""

FIGURES: dict[str, str] = {
    "median_by_layer": "Median centred cosine, full vs truncated context, against layer per context",
    "distribution": "The whole distribution of the cosine per layer (context 5): a long negative tail",
    "categories": "Cosine by token category at layer 0, context 10: punctuation and common words lowest",
    "squared_cosine": "Squared cosine (fraction of norm explained) against layer per context",
}
