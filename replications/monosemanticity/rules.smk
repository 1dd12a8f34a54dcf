# Monosemanticity replication: an SAE on the MLP of a 1-layer GELU LM (open-source replication of
# Anthropic's "Towards Monosemanticity"). Steps as in replications/monosemanticity/README.md.
#
# The rule graph depends on the profile: smoke and default train a gelu-1l-shaped stand-in here
# (mono_corpus -> mono_tokenizer -> mono_lm); paper reads gelu-1l and c4-code-tokenized-2b by name
# (mono_paper_data, mono_lm_reference) and never builds a corpus or trains an LM. Later LM
# write-ups can reuse the stand-in through rules.mono_lm.output / rules.mono_tokenizer.output.

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
    MONO_TOKENS = f"{MONO_R}/tokenizer/tokens.safetensors"
    MONO_MODEL_INPUT = [f"{MONO_LM_DIR}/model.safetensors", f"{MONO_LM_DIR}/lm_config.json"]
    MONO_LM_METRICS = f"{MONO_LM_DIR}/history.json"
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

    rule mono_corpus:
        """Step 1a (stand-in only): prose + Python code corpus, 80/20 like gelu-1l's data."""
        output:
            train=f"{MONO_R}/corpus/train.txt",
            val=f"{MONO_R}/corpus/val.txt",
            manifest=f"{MONO_R}/corpus/manifest.json",
        params:
            profile=PROFILE,
            out_dir=lambda wildcards, output: str(Path(output.manifest).parent),
        log:
            f"{MONO_LOG}/corpus.log",
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.build_corpus --writeup monosemanticity "
            "--profile {params.profile} --out-dir {params.out_dir} 2>&1 | tee {log}"

    rule mono_tokenizer:
        """Step 1b (stand-in only): byte-level BPE (digits split) and 128-token rows, BOS first."""
        input:
            train=rules.mono_corpus.output.train,
            val=rules.mono_corpus.output.val,
        output:
            tokenizer=f"{MONO_R}/tokenizer/tokenizer.json",
            tokens=f"{MONO_R}/tokenizer/tokens.safetensors",
            manifest=f"{MONO_R}/tokenizer/manifest.json",
        params:
            profile=PROFILE,
            corpus_dir=lambda wildcards, input: str(Path(input.train).parent),
            out_dir=lambda wildcards, output: str(Path(output.tokens).parent),
        log:
            f"{MONO_LOG}/tokenizer.log",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.train_tokenizer --writeup monosemanticity "
            "--profile {params.profile} --corpus-dir {params.corpus_dir} "
            "--out-dir {params.out_dir} 2>&1 | tee {log}"

    rule mono_lm:
        """Step 1c (stand-in only): train the 1-layer GELU stand-in for gelu-1l; loss curve."""
        input:
            tokens=rules.mono_tokenizer.output.tokens,
            tokenizer=rules.mono_tokenizer.output.tokenizer,
        output:
            model=f"{MONO_LM_DIR}/model.safetensors",
            config=f"{MONO_LM_DIR}/lm_config.json",
            history=f"{MONO_LM_DIR}/history.json",
            loss=figure_output("monosemanticity", "lm_loss"),
            loss_pdf=f"{MONO_FIG}/lm_loss.pdf",
        params:
            profile=PROFILE,
            ckpt=MONO_CKPT,
            tokenizer_dir=lambda wildcards, input: str(Path(input.tokenizer).parent),
            out_dir=lambda wildcards, output: str(Path(output.model).parent),
        log:
            f"{MONO_LOG}/lm.log",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.train_lm --writeup monosemanticity "
            "--profile {params.profile} --tokens {input.tokens} "
            "--tokenizer-dir {params.tokenizer_dir} --out-dir {params.out_dir} "
            "--checkpoint-dir {params.ckpt} --figure {output.loss} --threads {threads} "
            "2>&1 | tee {log}"

else:

    rule mono_paper_data:
        """Step 1 (paper): c4-code-tokenized-2b by name, cut into 128-token rows, shuffled."""
        output:
            tokens=MONO_TOKENS,
        params:
            profile=PROFILE,
        log:
            f"{MONO_LOG}/paper_data.log",
        threads: 4
        resources:
            mem_mb=MONO_MEM,
        conda:
            ENV
        shell:
            "python -m replications.monosemanticity.scripts.paper_data "
            "--profile {params.profile} --threads {threads} --out {output.tokens} "
            "2>&1 | tee {log}"

    rule mono_lm_reference:
        """Step 1 (paper): gelu-1l by name; its held-out loss by position (not trained here)."""
        input:
            tokens=MONO_TOKENS,
        output:
            metrics=MONO_LM_METRICS,
            loss=figure_output("monosemanticity", "lm_loss"),
            loss_pdf=f"{MONO_FIG}/lm_loss.pdf",
        params:
            profile=PROFILE,
            model=MONO.model.name,
        log:
            f"{MONO_LOG}/lm_reference.log",
        threads: 1
        resources:
            mem_mb=MONO_MEM,
            gpu=MONO_GPU,
        conda:
            ENV
        shell:
            "python -m replications.monosemanticity.scripts.lm_reference "
            "--profile {params.profile} --model {params.model} --tokens {input.tokens} "
            "--out {output.metrics} --figure {output.loss} --threads {threads} 2>&1 | tee {log}"


rule mono_sae:
    """Steps 2-3: train the SAE (run=main) and the same SAE with another seed (run=seed2)."""
    input:
        tokens=MONO_TOKENS,
        model=MONO_MODEL_INPUT,
    output:
        **MONO_SAE["{run}"],
    params:
        profile=PROFILE,
        ckpt=MONO_CKPT,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else MONO.model.name),
        out_dir=lambda wildcards, output: str(Path(output.weights).parent),
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
    log:
        f"{MONO_LOG}/sae_orthogonal.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
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
    log:
        f"{MONO_LOG}/analyse.log",
    threads: 1
    resources:
        mem_mb=MONO_MEM,
        gpu=MONO_GPU,
    conda:
        ENV
    shell:
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
    log:
        f"{MONO_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
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
    output:
        pipeline.metrics_path(PROFILE, "monosemanticity"),
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


rule mono_all:
    """Every figure and the metrics of the monosemanticity replication."""
    input:
        expand(f"{MONO_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("monosemanticity")),
               ext=["png", "pdf"]),
        rules.mono_metrics.output,
