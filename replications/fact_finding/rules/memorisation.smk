# Fact finding, toy models of memorisation (post 4). Included from
# replications/fact_finding/rules.smk (globals FF_R, FF_FIG, FF_LOG). No language model: one- and
# two-layer MLPs map pairs of integers to random (or rule-made) binary labels; probes read their
# intermediate states. Config section `memorisation` (toy_memorisation.py). CPU in every profile.


rule ff_memorisation:
    """Step M1: train the toy MLPs (random and rule labels, 1 and 2 blocks), probe every
    intermediate state for the label and the first input; training and probe figures."""
    input:
        code=code_inputs("replications.fact_finding.scripts.memorisation"),
    output:
        results=f"{FF_R}/memorisation/results.json",
        metrics=f"{FF_R}/memorisation/metrics.json",
        training=figure_output("fact_finding", "memorisation_training"),
        training_pdf=f"{FF_FIG}/memorisation_training.pdf",
        probes=figure_output("fact_finding", "memorisation_probes"),
        probes_pdf=f"{FF_FIG}/memorisation_probes.pdf",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.fact_finding.scripts.memorisation"),
        **config_params("fact_finding.memorisation"),
    log:
        f"{FF_LOG}/memorisation.log",
    threads: 1
    resources:
        mem_mb=1500,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.fact_finding.scripts.memorisation --profile {params.profile} "
        "--results {output.results} --metrics {output.metrics} "
        "--figure-training {output.training} --figure-probes {output.probes} "
        "--threads {threads} 2>&1 | tee {log}"
