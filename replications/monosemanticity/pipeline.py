"""Figures of the monosemanticity replication (name -> what it shows); read by the Snakefile and DVC."""

FIGURES: dict[str, str] = {
    "lm_loss": "The LM the SAEs read: stand-in training curve (paper: gelu-1l's loss by position)",
    "sae_training": "SAE training: L0, loss recovered, dead / ultra-low shares, frequency drift",
    "feature_frequency": "Feature firing frequencies: normal mode, ultra-low cluster, dead",
    "ultra_low_cluster": "Ultra-low features: encoders share one direction, decoders do not",
    "orthogonal_retrain": "SAE held orthogonal to the ultra-low direction: a new cluster forms",
    "neuron_sparsity": "Decoder rows in the neuron basis: dense, 1-sparse, 10-ish-sparse",
    "neuron_kurtosis": "Neuron kurtosis of decoder rows against a Gaussian baseline",
    "enc_dec_cosine": "Cosine between each feature's encoder and decoder vectors",
    "nullspace": "Share of encoder / decoder vectors in the null space of W_out vs random",
    "case_studies": "The first non-ultra-low features: top contexts and logit effects",
}
