# Fact finding, the circuit (post 2 summary, post 3 probes and path patching). Included from
# replications/fact_finding/rules.smk (globals FF, FF_R, FF_FIG, FF_LOG, FF_FACTS,
# FF_MODEL_INPUT, FF_MEM, FF_GPU). One script, one clean pass per prompt set:
# patching, head attribution, the effective model, probes and path patching share it.


rule ff_circuit:
    """Steps C1-C5: activation patching by layer and position, the attribute head (direct logit
    attribution), the effective model's accuracy, sport probes per layer with the summed-token
    baseline, path patching between the lookup MLPs, and the locus (probes at the surname vs
    the final token per layer, attention knockout from the final token)."""
    input:
        facts=FF_FACTS,
        model=FF_MODEL_INPUT,
        code=code_inputs("replications.fact_finding.scripts.circuit"),
    output:
        metrics=f"{FF_R}/circuit/metrics.json",
        tensors=f"{FF_R}/circuit/circuit.safetensors",
        labels=f"{FF_R}/circuit/circuit.json",
        patching=figure_output("fact_finding", "circuit_patching"),
        patching_pdf=f"{FF_FIG}/circuit_patching.pdf",
        heads=figure_output("fact_finding", "attribute_heads"),
        heads_pdf=f"{FF_FIG}/attribute_heads.pdf",
        effective=figure_output("fact_finding", "effective_model"),
        effective_pdf=f"{FF_FIG}/effective_model.pdf",
        probes=figure_output("fact_finding", "sport_probes"),
        probes_pdf=f"{FF_FIG}/sport_probes.pdf",
        paths=figure_output("fact_finding", "mlp_path_patching"),
        paths_pdf=f"{FF_FIG}/mlp_path_patching.pdf",
        locus=figure_output("fact_finding", "sport_locus"),
        locus_pdf=f"{FF_FIG}/sport_locus.pdf",
    params:
        profile=PROFILE,
        model=model_arg(FF.model.name),
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        code_sha=code_hash("replications.fact_finding.scripts.circuit"),
        **config_params(
            "fact_finding.circuit", "fact_finding.corpus", "fact_finding.lm",
            "fact_finding.memorisation", "fact_finding.model", "fact_finding.neurons",
            "fact_finding.paper_data", "fact_finding.tokenizer", "fact_finding.world",
        ),
    log:
        f"{FF_LOG}/circuit.log",
    # Wall time lives here and in the log (per part), never in metrics.json: metrics must be
    # byte-stable so DVC and the smoke regression see only real changes.
    benchmark:
        f"{FF_LOG}/circuit.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=FF_MEM,
        gpu=FF_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.fact_finding.scripts.circuit --profile {params.profile} "
        "--model {params.model} --facts {input.facts} --out-dir {params.out_dir} "
        "--patching-figure {output.patching} --heads-figure {output.heads} "
        "--effective-figure {output.effective} --probes-figure {output.probes} "
        "--paths-figure {output.paths} --locus-figure {output.locus} "
        "--threads {threads} 2>&1 | tee {log}"
