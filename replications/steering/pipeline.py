"""Figures of the steering replication (name -> what it shows); read by the Snakefile and DVC."""

FIGURES: dict[str, str] = {
    "steering_by_layer": "P(success) of both ActAdd vectors added at each layer vs unsteered",
    "anger_decomposition": "SAE features on the 'Anger' token and the anger feature's dashboard",
    "anger_pareto": "P(angry rollout) vs spliced loss: ActAdd vector vs its top SAE feature",
    "anger_completions": "Sample completions: unsteered, the anger vector, the anger feature",
    "wedding_decomposition": "Per-position SAE features of the wedding vector (dense left out)",
    "wedding_pareto": "Wedding frontiers: hand-picked, reconstruction, top-k, projected vs original",
    "wedding_completions": "Sample completions: unsteered, the wedding vector, padding projected out",
}
