# Monosemanticity replication: an SAE on the MLP of a 1-layer GELU LM (open-source replication of
# Anthropic's "Towards Monosemanticity"). Steps as in replications/monosemanticity/README.md.
#
# The rule graph depends on the profile: smoke and default read a gelu-1l-shaped stand-in from
# the model zoo (shared/zoo.smk builds it from this write-up's corpus / tokenizer / lm settings);
# paper reads gelu-1l and c4-code-tokenized-2b by name (mono_paper_data, mono_lm_reference) and
# never builds a corpus or trains an LM.

from pathlib import Path

from replications.monosemanticity import config as mono_config

MONO = pipeline.load_writeup_config(mono_config, PROFILE)
MONO_R = pipeline.results_dir(PROFILE, "monosemanticity")
MONO_FIG = f"{MONO_R}/figures"
MONO_CKPT = f"results/{PROFILE}/checkpoints/monosemanticity"
MONO_LOG = f"{LOGS}/monosemanticity"
MONO_STAND_IN = MONO.model.source == "stand_in"
# SAE training and the analyses want a GPU only at paper scale (gelu-1l, 16384 features).
MONO_GPU = 0 if MONO_STAND_IN else 1
# Paper: the whole tokenized data set (about 6.8 GB of int32 rows) is held in memory.
MONO_MEM = 3000 if MONO_STAND_IN else 40000
MONO_LM_DIR = f"{MONO_R}/lm"
if MONO_STAND_IN:
    MONO_LM = zoo_stand_in("gelu-1l-stand-in", "monosemanticity", MONO)
    MONO_TOKENS = MONO_LM.tokens
    MONO_MODEL_INPUT = MONO_LM.inputs
    MONO_LM_METRICS = MONO_LM.history
else:
    MONO_TOKENS = f"{MONO_R}/data/tokens.safetensors"
    MONO_MODEL_INPUT = []
    MONO_LM_METRICS = f"{MONO_LM_DIR}/reference.json"


# The files one SAE run writes: SAELens directory + frequencies, training history, final metrics.
MONO_SAE_FILES = {
    "weights": "sae_weights.safetensors",
    "cfg": "cfg.json",
    "sparsity": "sparsity.safetensors",
    "frequency": "frequency.safetensors",
    "history": "history.json",
    "metrics": "eval.json",
}
MONO_SAE = {
    run: {key: f"{MONO_R}/sae/{run}/{name}" for key, name in MONO_SAE_FILES.items()}
    for run in ("main", "seed2", "orthogonal", "{run}")
}


if MONO_STAND_IN:

    rule mono_lm_loss:
        """Step 1 (stand-in): the zoo stand-in's training curve is this write-up's first figure."""
        input:
            loss=MONO_LM.loss,
            loss_pdf=MONO_LM.loss_pdf,
        output:
            loss=figure_output("monosemanticity", "lm_loss"),
            loss_pdf=f"{MONO_FIG}/lm_loss.pdf",
        log:
            f"{MONO_LOG}/lm_loss.log",
        threads: 1
        resources:
            mem_mb=200,
        conda:
            ENV
        shell:
            "(cp -v {input.loss} {output.loss} && cp -v {input.loss_pdf} {output.loss_pdf}) "
            "2>&1 | tee {log}"

else:

    rule mono_paper_data:
        """Step 1 (paper): c4-code-tokenized-2b by name, cut into 128-token rows, shuffled."""
        input:
            code=code_inputs("replications.monosemanticity.scripts.paper_data"),
        output:
            tokens=MONO_TOKENS,
        params:
            profile=PROFILE,
            code_sha=code_hash("replications.monosemanticity.scripts.paper_data"),
            **config_params("monosemanticity.model"),
        log:
            f"{MONO_LOG}/paper_data.log",
        threads: 4
        resources:
            mem_mb=MONO_MEM,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.monosemanticity.scripts.paper_data "
            "--profile {params.profile} --threads {threads} --out {output.tokens} "
            "2>&1 | tee {log}"

    rule mono_lm_reference:
        """Step 1 (paper): gelu-1l by name; its held-out loss by position (not trained here)."""
        input:
            tokens=MONO_TOKENS,
            code=code_inputs("replications.monosemanticity.scripts.lm_reference"),
        output:
            metrics=MONO_LM_METRICS,
            loss=figure_output("monosemanticity", "lm_loss"),
            loss_pdf=f"{MONO_FIG}/lm_loss.pdf",
        params:
            profile=PROFILE,
            model=MONO.model.name,
            code_sha=code_hash("replications.monosemanticity.scripts.lm_reference"),
            **config_params(
                "monosemanticity.analysis", "monosemanticity.buffer",
                "monosemanticity.case_studies", "monosemanticity.corpus",
                "monosemanticity.dashboard",
                "monosemanticity.figures", "monosemanticity.lm", "monosemanticity.model",
                "monosemanticity.orthogonal", "monosemanticity.sae", "monosemanticity.second_seed",
                "monosemanticity.tokenizer", "monosemanticity.train",
            ),
        log:
            f"{MONO_LOG}/lm_reference.log",
        threads: 1
        resources:
            mem_mb=MONO_MEM,
            gpu=MONO_GPU,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.monosemanticity.scripts.lm_reference "
            "--profile {params.profile} --model {params.model} --tokens {input.tokens} "
            "--out {output.metrics} --figure {output.loss} --threads {threads} 2>&1 | tee {log}"


rule mono_sae:
    """Steps 2-3: train the SAE (run=main) and the same SAE with another seed (run=seed2)."""
    input:
        tokens=MONO_TOKENS,
        model=MONO_MODEL_INPUT,
        code=code_inputs("replications.monosemanticity.scripts.train_sae"),
    output:
        **MONO_SAE["{run}"],
    params:
        profile=PROFILE,
        ckpt=MONO_CKPT,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else MONO.model.name),
        out_dir=lambda wildcards, output: str(Path(output.weights).parent),
        code_sha=code_hash("replications.monosemanticity.scripts.train_sae"),
        **config_params(
            "monosemanticity.analysis", "monosemanticity.buffer", "monosemanticity.figures",
            "monosemanticity.model", "monosemanticity.sae", "monosemanticity.second_seed",
            "monosemanticity.train",
        ),
    wildcard_constraints:
        run="main|seed2",
    log:
        f"{MONO_LOG}/sae_{{run}}.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.monosemanticity.scripts.train_sae --profile {params.profile} "
        "--run {wildcards.run} --model {params.model} --tokens {input.tokens} "
        "--out-dir {params.out_dir} --checkpoint-dir {params.ckpt} --threads {threads} "
        "2>&1 | tee {log}"


rule mono_sae_orthogonal:
    """Step 4: retrain the SAE held orthogonal to the first SAE's ultra-low direction."""
    input:
        tokens=MONO_TOKENS,
        model=MONO_MODEL_INPUT,
        first=list(MONO_SAE["main"].values()),
        code=code_inputs("replications.monosemanticity.scripts.train_orthogonal"),
    output:
        **MONO_SAE["orthogonal"],
        direction=f"{MONO_R}/sae/orthogonal/direction.safetensors",
        direction_info=f"{MONO_R}/sae/orthogonal/direction.json",
    params:
        profile=PROFILE,
        ckpt=MONO_CKPT,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else MONO.model.name),
        first_dir=lambda wildcards, input: str(Path(input.first[0]).parent),
        out_dir=lambda wildcards, output: str(Path(output.weights).parent),
        code_sha=code_hash("replications.monosemanticity.scripts.train_orthogonal"),
        **config_params(
            "monosemanticity.analysis", "monosemanticity.buffer", "monosemanticity.figures",
            "monosemanticity.model", "monosemanticity.orthogonal", "monosemanticity.sae",
            "monosemanticity.train",
        ),
    log:
        f"{MONO_LOG}/sae_orthogonal.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.monosemanticity.scripts.train_orthogonal "
        "--profile {params.profile} --model {params.model} --tokens {input.tokens} "
        "--from {params.first_dir} --out-dir {params.out_dir} --checkpoint-dir {params.ckpt} "
        "--threads {threads} 2>&1 | tee {log}"


rule mono_analyse:
    """Steps 5-9: frequencies, ultra-low cluster, seeds, orthogonal retrain, neuron sparsity,
    kurtosis, encoder vs decoder, null space of W_out, case studies."""
    input:
        tokens=MONO_TOKENS,
        model=MONO_MODEL_INPUT,
        main=list(MONO_SAE["main"].values()),
        seed2=list(MONO_SAE["seed2"].values()),
        orthogonal=list(rules.mono_sae_orthogonal.output),
        code=code_inputs("replications.monosemanticity.scripts.analyse"),
    output:
        metrics=f"{MONO_R}/analysis/metrics.json",
        cases=f"{MONO_R}/analysis/case_studies.safetensors",
        cases_json=f"{MONO_R}/analysis/case_studies.json",
        model=f"{MONO_R}/analysis/model.safetensors",
    params:
        profile=PROFILE,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else MONO.model.name),
        sae=lambda wildcards, input: str(Path(input.main[0]).parent.parent),
        out_dir=lambda wildcards, output: str(Path(output.metrics).parent),
        code_sha=code_hash("replications.monosemanticity.scripts.analyse"),
        **config_params(
            "monosemanticity.analysis", "monosemanticity.buffer", "monosemanticity.case_studies",
            "monosemanticity.model",
        ),
    log:
        f"{MONO_LOG}/analyse.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.monosemanticity.scripts.analyse --profile {params.profile} "
        "--model {params.model} --tokens {input.tokens} --sae {params.sae}/main "
        "--seed2 {params.sae}/seed2 --orthogonal {params.sae}/orthogonal "
        "--out-dir {params.out_dir} --threads {threads} 2>&1 | tee {log}"


rule mono_figures:
    """Figures of steps 2-9 (the LM loss curve comes from step 1)."""
    input:
        main=list(MONO_SAE["main"].values()),
        seed2=list(MONO_SAE["seed2"].values()),
        orthogonal=list(rules.mono_sae_orthogonal.output),
        analysis=list(rules.mono_analyse.output),
        code=code_inputs("replications.monosemanticity.scripts.make_figures"),
    output:
        **{name: figure_output("monosemanticity", name) for name in pipeline.figures("monosemanticity")
           if name != "lm_loss"},
        **{f"{name}_pdf": f"{MONO_FIG}/{name}.pdf" for name in pipeline.figures("monosemanticity")
           if name != "lm_loss"},
    params:
        profile=PROFILE,
        sae=lambda wildcards, input: str(Path(input.main[0]).parent.parent),
        analysis=lambda wildcards, input: str(Path(input.analysis[0]).parent),
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.monosemanticity.scripts.make_figures"),
        **config_params(
            "monosemanticity.analysis", "monosemanticity.buffer", "monosemanticity.case_studies",
            "monosemanticity.corpus", "monosemanticity.dashboard", "monosemanticity.figures",
            "monosemanticity.lm",
            "monosemanticity.model", "monosemanticity.orthogonal", "monosemanticity.sae",
            "monosemanticity.second_seed", "monosemanticity.tokenizer", "monosemanticity.train",
        ),
    log:
        f"{MONO_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.monosemanticity.scripts.make_figures "
        "--profile {params.profile} --sae {params.sae}/main --seed2 {params.sae}/seed2 "
        "--orthogonal {params.sae}/orthogonal --analysis {params.analysis} "
        "--figure-dir {params.figure_dir} --threads {threads} 2>&1 | tee {log}"


rule mono_metrics:
    """Step 10: every number the claims file checks, in one metrics.json."""
    input:
        sae=MONO_SAE["main"]["metrics"],
        seed2=MONO_SAE["seed2"]["metrics"],
        orthogonal=MONO_SAE["orthogonal"]["metrics"],
        analysis=rules.mono_analyse.output.metrics,
        lm=MONO_LM_METRICS,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "monosemanticity"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{MONO_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} sae={input.sae} "
        "sae_seed2={input.seed2} sae_orthogonal={input.orthogonal} "
        "analysis={input.analysis} lm={input.lm}:final 2>&1 | tee {log}"


rule mono_dashboard:
    """Feature dashboard of the SAE: top contexts, activation histogram and logit effects of a
    spread of live features (shared.dashboard), linked from the report."""
    input:
        tokens=MONO_TOKENS,
        model=MONO_MODEL_INPUT,
        sae=list(MONO_SAE["main"].values()),
        code=code_inputs("shared.dashboard"),
    output:
        f"{MONO_R}/dashboard/dashboard.html",
    params:
        model=model_arg(MONO.model.name),
        sae=lambda wildcards, input: str(Path(input.sae[0]).parent),
        title=f"Monosemanticity SAE ({PROFILE} profile): feature dashboard",
        **dashboard_rule_params("monosemanticity", MONO.dashboard),
    log:
        f"{LOGS}/monosemanticity/dashboard.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
        "python -m shared.dashboard --model {params.model} --sae {params.sae} "
        "--tokens {input.tokens} --title {params.title:q} --settings {params.settings:q} "
        "--out {output} --threads {threads} 2>&1 | tee {log}"


DASHBOARDS["monosemanticity"] = rules.mono_dashboard.output[0]


rule mono_all:
    """Every figure and the metrics of the monosemanticity replication."""
    input:
        expand(f"{MONO_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("monosemanticity")),
               ext=["png", "pdf"]),
        rules.mono_metrics.output,
