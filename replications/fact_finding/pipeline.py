"""Figures of the fact-finding replication (name -> what it shows), in the write-up's order."""

FIGURES: dict[str, str] = {
    # --- the stand-in and the facts it knows (ff_lm, ff_facts) ---
    "recall": "accuracy per relation: people in the text, made-up people, commonest value",
    # --- the circuit (rules/circuit.smk) ---
    "circuit_patching": "activation patching (noising) by layer and position: residual, attn, MLP",
    "attribute_heads": "direct logit attribution of each head to the sport; attention to surname",
    "effective_model": "the effective model's accuracy: head OV directions and a logistic probe",
    "sport_probes": "sport probes per layer (10 splits) and the summed-token baseline",
    "mlp_path_patching": "path patching between lookup MLPs: probes, accuracy, loss, KL per path",
    # --- the MLP neurons (rules/neurons.smk) ---
    "neuron_fact_correlation": "one entity's facts: correlation of per-neuron ablation effects",
    "neuron_nonlinear_excess": "GELU-made non-linear excess on the head vs the total",
    "baseball_neuron": "the most baseball-selective lookup neuron: AUC, weight cosines, ablations",
    "mlp_norms_known_unknown": "MLP output norm at the surname, known vs unknown names, by layer",
    "mlp_linearity": "swap-surname parallelogram test: trained vs shuffled MLPs, and residuals",
    # --- toy models of memorisation (rules/memorisation.smk) ---
    "memorisation_training": "toy MLPs on pairs: train vs held-out accuracy, random vs rule labels",
    "memorisation_probes": "toy MLPs: probe accuracy by layer for the label and the first input",
}
