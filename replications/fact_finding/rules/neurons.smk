# Fact finding, the lookup MLPs' neurons (post 3). Included from replications/fact_finding/rules.smk
# (globals FF, FF_R, FF_FIG, FF_LOG, FF_FACTS, FF_MODEL_INPUT, FF_MEM, FF_GPU).
# Both rules read the circuit part's lookup MLPs and attribute head (config section `circuit`).


rule ff_neuron_facts:
    """Step N1: ablate every lookup neuron at the entity's surname, one at a time (batched
    patching); correlate the effects on its facts' answers across neurons."""
    input:
        facts=FF_FACTS,
        model=FF_MODEL_INPUT,
        code=code_inputs("replications.fact_finding.scripts.neuron_facts"),
    output:
        metrics=f"{FF_R}/neurons/facts/metrics.json",
        effects=f"{FF_R}/neurons/facts/effects.safetensors",
        figure=figure_output("fact_finding", "neuron_fact_correlation"),
        figure_pdf=f"{FF_FIG}/neuron_fact_correlation.pdf",
    params:
        profile=PROFILE,
        model=model_arg(FF.model.name),
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        code_sha=code_hash("replications.fact_finding.scripts.neuron_facts"),
        **config_params(
            "fact_finding.circuit", "fact_finding.corpus", "fact_finding.lm",
            "fact_finding.memorisation", "fact_finding.model", "fact_finding.neurons",
            "fact_finding.paper_data", "fact_finding.tokenizer", "fact_finding.world",
        ),
    log:
        f"{FF_LOG}/neuron_facts.log",
    threads: 1
    resources:
        mem_mb=FF_MEM,
        gpu=FF_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.fact_finding.scripts.neuron_facts --profile {params.profile} "
        "--model {params.model} --facts {input.facts} --out-dir {params.out_dir} "
        "--figure {output.figure} --threads {threads} 2>&1 | tee {log}"


rule ff_neuron_lookup:
    """Steps N2-N4: non-linear excess across the GELUs, the baseball neuron, MLP output norms of
    known vs unknown names and the parallelogram test (trained vs shuffled MLP weights)."""
    input:
        facts=FF_FACTS,
        model=FF_MODEL_INPUT,
        code=code_inputs("replications.fact_finding.scripts.neuron_lookup"),
    output:
        metrics=f"{FF_R}/neurons/lookup/metrics.json",
        tensors=f"{FF_R}/neurons/lookup/lookup.safetensors",
        excess=figure_output("fact_finding", "neuron_nonlinear_excess"),
        excess_pdf=f"{FF_FIG}/neuron_nonlinear_excess.pdf",
        selective=figure_output("fact_finding", "baseball_neuron"),
        selective_pdf=f"{FF_FIG}/baseball_neuron.pdf",
        norms=figure_output("fact_finding", "mlp_norms_known_unknown"),
        norms_pdf=f"{FF_FIG}/mlp_norms_known_unknown.pdf",
        linearity=figure_output("fact_finding", "mlp_linearity"),
        linearity_pdf=f"{FF_FIG}/mlp_linearity.pdf",
    params:
        profile=PROFILE,
        model=model_arg(FF.model.name),
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        code_sha=code_hash("replications.fact_finding.scripts.neuron_lookup"),
        **config_params(
            "fact_finding.circuit", "fact_finding.corpus", "fact_finding.lm",
            "fact_finding.memorisation", "fact_finding.model", "fact_finding.neurons",
            "fact_finding.paper_data", "fact_finding.tokenizer", "fact_finding.world",
        ),
    log:
        f"{FF_LOG}/neuron_lookup.log",
    threads: 1
    resources:
        mem_mb=FF_MEM,
        gpu=FF_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.fact_finding.scripts.neuron_lookup --profile {params.profile} "
        "--model {params.model} --facts {input.facts} --out-dir {params.out_dir} "
        "--excess-figure {output.excess} --selective-figure {output.selective} "
        "--norms-figure {output.norms} --linearity-figure {output.linearity} "
        "--threads {threads} 2>&1 | tee {log}"
