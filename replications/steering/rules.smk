# Steering with SAEs (GDM progress update #1, snippet 1): ActAdd's anger and wedding steering
# vectors decomposed with a residual-stream SAE, and SAE-based vectors compared on Pareto
# frontiers of P(successful rollout) against spliced LM loss. Steps as in
# replications/steering/README.md.
#
# The rule graph depends on the profile: smoke and default read a GPT-2-shaped stand-in from the
# model zoo (shared/zoo.smk trains it on the local corpus plus steer_docs' documents, from this
# write-up's corpus / tokenizer / lm settings; steer_corpus_report describes it); paper reads
# GPT-2 XL and OpenWebText tokens by name (steer_paper_data) and trains no LM. In every profile
# the SAE comes from the model zoo (zoo_sae, from the sae / sae_run settings): it stands in for
# a published SAE, which the paper profile may load instead (sae_run.source: load).

from pathlib import Path

from replications.steering import config as steer_config

STEER = pipeline.load_writeup_config(steer_config, PROFILE)
STEER_R = pipeline.results_dir(PROFILE, "steering")
STEER_FIG = f"{STEER_R}/figures"
STEER_LOG = f"{LOGS}/steering"
STEER_STAND_IN = STEER.model.source == "stand_in"
# GPT-2 XL (1.5B parameters): SAE training, rollouts and spliced losses want a GPU.
STEER_GPU = 0 if STEER_STAND_IN else 1
STEER_MEM = 3000 if STEER_STAND_IN else 60000
STEER_VEC_DIR = f"{STEER_R}/vectors"
STEER_DOCS = f"{STEER_R}/docs/docs.jsonl"
if STEER_STAND_IN:
    STEER_LM = zoo_stand_in("gpt2-steering-stand-in", "steering", STEER, extra_docs=[STEER_DOCS])
    STEER_TOKENS = STEER_LM.tokens
    STEER_MODEL_INPUT = STEER_LM.inputs
    # Stand-in only: corpus vocabulary counts and the LM's final losses in the metrics.
    STEER_EXTRA_METRICS = (f"corpus={STEER_R}/corpus/report.json "
                           f"lm={STEER_LM.history}:final")
    STEER_EXTRA_INPUTS = [f"{STEER_R}/corpus/report.json", STEER_LM.history]
else:
    STEER_TOKENS = f"{STEER_R}/data/tokens.safetensors"
    STEER_MODEL_INPUT = []
    STEER_EXTRA_METRICS = ""
    STEER_EXTRA_INPUTS = []
# Step 2: the residual-stream SAE at the steering layer, from the model zoo: trained on the
# steered model (stand-in or GPT-2 XL), or loaded from a SAELens directory (sae_run.source).
STEER_SAE = zoo_sae("steering-resid-sae", "steering", STEER,
                    model=STEER_LM if STEER_STAND_IN else STEER.model.name,
                    tokens=STEER_TOKENS, mem_mb=STEER_MEM, gpu=STEER_GPU)


if STEER_STAND_IN:

    rule steer_docs:
        """Step 1a (stand-in only): synthetic anger / calm / wedding / ordinary-topic documents."""
        input:
            code=code_inputs("replications.steering.scripts.make_docs"),
        output:
            docs=STEER_DOCS,
        params:
            profile=PROFILE,
            code_sha=code_hash("replications.steering.scripts.make_docs"),
            **config_params("steering.docs"),
        log:
            f"{STEER_LOG}/docs.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.steering.scripts.make_docs --profile {params.profile} "
            "--out {output.docs} 2>&1 | tee {log}"

    rule steer_corpus_report:
        """Step 1d (stand-in only): anger / wedding word counts; how the prompts tokenize."""
        input:
            train=STEER_LM.corpus_train,
            docs=rules.steer_docs.output.docs,
            tokenizer=STEER_LM.tokenizer,
            code=code_inputs("replications.steering.scripts.corpus_report"),
        output:
            report=f"{STEER_R}/corpus/report.json",
        params:
            profile=PROFILE,
            corpus_dir=lambda wildcards, input: str(Path(input.train).parent),
            tokenizer_dir=lambda wildcards, input: str(Path(input.tokenizer).parent),
            code_sha=code_hash("replications.steering.scripts.corpus_report"),
            **config_params("steering.anger", "steering.weddings"),
        log:
            f"{STEER_LOG}/corpus_report.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.steering.scripts.corpus_report --profile {params.profile} "
            "--corpus-dir {params.corpus_dir} --docs {input.docs} "
            "--tokenizer-dir {params.tokenizer_dir} --out {output.report} 2>&1 | tee {log}"

else:

    rule steer_paper_data:
        """Step 1 (paper): OpenWebText GPT-2 tokens by name: SAE rows and held-out 1024-rows."""
        input:
            code=code_inputs("replications.steering.scripts.paper_data"),
        output:
            tokens=STEER_TOKENS,
        params:
            profile=PROFILE,
            code_sha=code_hash("replications.steering.scripts.paper_data"),
            **config_params("steering.data", "steering.model"),
        log:
            f"{STEER_LOG}/paper_data.log",
        threads: 4
        resources:
            mem_mb=STEER_MEM,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.steering.scripts.paper_data --profile {params.profile} "
            "--threads {threads} --out {output.tokens} 2>&1 | tee {log}"


rule steer_vectors:
    """Steps 3-4: ActAdd vectors, their SAE decompositions and every SAE-based variant."""
    input:
        tokens=STEER_TOKENS,
        model=STEER_MODEL_INPUT,
        sae=STEER_SAE.inputs,
        code=code_inputs("replications.steering.scripts.build_vectors"),
    output:
        vectors=f"{STEER_VEC_DIR}/vectors.safetensors",
        analysis=f"{STEER_VEC_DIR}/analysis.json",
    params:
        profile=PROFILE,
        model=model_arg(STEER.model.name),
        sae_dir=lambda wildcards, input: str(Path(input.sae[0]).parent),
        out_dir=lambda wildcards, output: str(Path(output.vectors).parent),
        code_sha=code_hash("replications.steering.scripts.build_vectors"),
        **config_params(
            "steering.analysis", "steering.anger", "steering.data", "steering.model",
            "steering.sae_run", "steering.weddings",
        ),
    log:
        f"{STEER_LOG}/vectors.log",
    threads: 1
    resources:
        mem_mb=STEER_MEM,
        gpu=STEER_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.build_vectors --profile {params.profile} "
        "--model {params.model} --tokens {input.tokens} --sae {params.sae_dir} "
        "--out-dir {params.out_dir} --threads {threads} 2>&1 | tee {log}"


rule steer_rollouts:
    """Step 5a: batched, KV-cached steered sampling of every condition; P(successful rollout)."""
    input:
        model=STEER_MODEL_INPUT,
        vectors=list(rules.steer_vectors.output),
        code=code_inputs("replications.steering.scripts.rollouts"),
    output:
        rollouts=f"{STEER_R}/rollouts/rollouts.json",
    params:
        profile=PROFILE,
        model=model_arg(STEER.model.name),
        vec_dir=lambda wildcards, input: str(Path(input.vectors[0]).parent),
        code_sha=code_hash("replications.steering.scripts.rollouts"),
        **config_params(
            "steering.anger", "steering.model", "steering.sampling", "steering.weddings",
        ),
    log:
        f"{STEER_LOG}/rollouts.log",
    threads: 1
    resources:
        mem_mb=STEER_MEM,
        gpu=STEER_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.rollouts --profile {params.profile} "
        "--model {params.model} --vectors {params.vec_dir} --out {output.rollouts} "
        "--threads {threads} 2>&1 | tee {log}"


rule steer_loss:
    """Step 5b: spliced LM loss of every condition on held-out pretraining text."""
    input:
        tokens=STEER_TOKENS,
        model=STEER_MODEL_INPUT,
        vectors=list(rules.steer_vectors.output),
        code=code_inputs("replications.steering.scripts.spliced_loss"),
    output:
        loss=f"{STEER_R}/loss/loss.json",
    params:
        profile=PROFILE,
        model=model_arg(STEER.model.name),
        vec_dir=lambda wildcards, input: str(Path(input.vectors[0]).parent),
        code_sha=code_hash("replications.steering.scripts.spliced_loss"),
        **config_params("steering.data", "steering.loss", "steering.model", "steering.sae_run"),
    log:
        f"{STEER_LOG}/loss.log",
    threads: 1
    resources:
        mem_mb=STEER_MEM,
        gpu=STEER_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.spliced_loss --profile {params.profile} "
        "--model {params.model} --tokens {input.tokens} --vectors {params.vec_dir} "
        "--out {output.loss} --threads {threads} 2>&1 | tee {log}"


rule steer_layer_sweep:
    """Step 5c: both ActAdd vectors at each of several layers (where steering works at all)."""
    input:
        model=STEER_MODEL_INPUT,
        code=code_inputs("replications.steering.scripts.layer_sweep"),
    output:
        sweep=f"{STEER_R}/layer_sweep/layer_sweep.json",
    params:
        profile=PROFILE,
        model=model_arg(STEER.model.name),
        code_sha=code_hash("replications.steering.scripts.layer_sweep"),
        **config_params(
            "steering.anger", "steering.layer_sweep", "steering.model", "steering.sampling",
            "steering.weddings",
        ),
    log:
        f"{STEER_LOG}/layer_sweep.log",
    threads: 1
    resources:
        mem_mb=STEER_MEM,
        gpu=STEER_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.layer_sweep --profile {params.profile} "
        "--model {params.model} --out {output.sweep} --threads {threads} 2>&1 | tee {log}"


rule steer_frontiers:
    """Step 6: Pareto frontiers of every method and the comparisons the claims check."""
    input:
        rollouts=rules.steer_rollouts.output.rollouts,
        loss=rules.steer_loss.output.loss,
        analysis=rules.steer_vectors.output.analysis,
        code=code_inputs("replications.steering.scripts.frontiers"),
    output:
        frontiers=f"{STEER_R}/frontiers/frontiers.json",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.steering.scripts.frontiers"),
        **config_params("steering.anger", "steering.frontier", "steering.weddings"),
    log:
        f"{STEER_LOG}/frontiers.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.frontiers --profile {params.profile} "
        "--rollouts {input.rollouts} --loss {input.loss} --analysis {input.analysis} "
        "--out {output.frontiers} 2>&1 | tee {log}"


rule steer_figures:
    """Figures of steps 3-6 and of the layer sweep."""
    input:
        vectors=list(rules.steer_vectors.output),
        rollouts=rules.steer_rollouts.output.rollouts,
        frontiers=rules.steer_frontiers.output.frontiers,
        sweep=rules.steer_layer_sweep.output.sweep,
        code=code_inputs("replications.steering.scripts.make_figures"),
    output:
        **{name: figure_output("steering", name) for name in pipeline.figures("steering")},
        **{f"{name}_pdf": f"{STEER_FIG}/{name}.pdf" for name in pipeline.figures("steering")},
    params:
        profile=PROFILE,
        vec_dir=lambda wildcards, input: str(Path(input.vectors[0]).parent),
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.steering.scripts.make_figures"),
        **config_params(
            "steering.analysis", "steering.anger", "steering.corpus", "steering.dashboard",
            "steering.data",
            "steering.docs", "steering.figures", "steering.frontier", "steering.layer_sweep",
            "steering.lm", "steering.loss", "steering.model", "steering.sae", "steering.sae_run",
            "steering.sampling", "steering.tokenizer", "steering.weddings",
        ),
    log:
        f"{STEER_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.steering.scripts.make_figures --profile {params.profile} "
        "--vectors {params.vec_dir} --rollouts {input.rollouts} "
        "--frontiers {input.frontiers} --sweep {input.sweep} --figure-dir {params.figure_dir} "
        "2>&1 | tee {log}"


rule steer_metrics:
    """Step 7: every number the claims file checks, in one metrics.json."""
    input:
        sae=STEER_SAE.metrics,
        frontiers=rules.steer_frontiers.output.frontiers,
        sweep=rules.steer_layer_sweep.output.sweep,
        extra=STEER_EXTRA_INPUTS,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "steering"),
    params:
        extra=STEER_EXTRA_METRICS,
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{STEER_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} sae={input.sae} "
        "anger={input.frontiers}:anger weddings={input.frontiers}:weddings "
        "layer_sweep={input.sweep} {params.extra} "
        "2>&1 | tee {log}"


rule steer_dashboard:
    """Feature dashboard of the SAE: top contexts, activation histogram and logit effects of a
    spread of live features (shared.dashboard), linked from the report."""
    input:
        tokens=STEER_TOKENS,
        model=STEER_MODEL_INPUT,
        sae=STEER_SAE.inputs,
        code=code_inputs("shared.dashboard"),
    output:
        f"{STEER_R}/dashboard/dashboard.html",
    params:
        model=model_arg(STEER.model.name),
        sae=lambda wildcards, input: str(Path(input.sae[0]).parent),
        title=f"Steering SAE ({PROFILE} profile): feature dashboard",
        **dashboard_rule_params("steering", STEER.dashboard),
    log:
        f"{LOGS}/steering/dashboard.log",
    threads: 1
    resources:
        mem_mb=STEER_MEM,
        gpu=STEER_GPU,
    conda:
        ENV
    shell:
        "python -m shared.dashboard --model {params.model} --sae {params.sae} "
        "--tokens {input.tokens} --title {params.title:q} --settings {params.settings:q} "
        "--out {output} --threads {threads} 2>&1 | tee {log}"


DASHBOARDS["steering"] = rules.steer_dashboard.output[0]


rule steer_all:
    """Every figure and the metrics of the steering replication."""
    input:
        expand(f"{STEER_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("steering")),
               ext=["png", "pdf"]),
        rules.steer_metrics.output,
