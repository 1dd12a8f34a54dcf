# SAE training methods (GDM progress update): inference-time optimisation, ghost grads, and
# "Improvements to Dictionary Learning". Steps as in replications/sae_methods/README.md.
#
# The model is the monosemanticity write-up's gelu-1l-shaped stand-in, handed over as the named
# artifacts its manifest provides and ours uses (writeup.yaml), with its token rows. Paper: each
# site's model by name (gelu-1l, EleutherAI/pythia-2.8b) and its data set by name.

from pathlib import Path

from replications.sae_methods import config as saem_config

SAEM = pipeline.load_writeup_config(saem_config, PROFILE)
SAEM_R = pipeline.results_dir(PROFILE, "sae_methods")
SAEM_FIG = f"{SAEM_R}/figures"
SAEM_LOG = f"{LOGS}/sae_methods"
SAEM_CKPT = f"results/{PROFILE}/checkpoints/sae_methods"
SAEM_STAND_IN = SAEM.model.source == "stand_in"
SAEM_LM = pipeline.handoff(PROFILE, "sae_methods", "monosemanticity", "lm", SAEM_STAND_IN)
SAEM_TOKENS = pipeline.handoff(PROFILE, "sae_methods", "monosemanticity", "tokens",
                               SAEM_STAND_IN).inputs
SAEM_SITES = [s.name for s in SAEM.sites]
SAEM_SITE_MODEL = {s.name: s.model for s in SAEM.sites}
# Paper: 16k-32k-feature SAEs at batch 4096 and Pythia-2.8B's activations want a GPU.
SAEM_GPU = 0 if SAEM_STAND_IN else 1
SAEM_MEM = 3000 if SAEM_STAND_IN else 60000
SAEM_TOKENS_ARG = lambda wildcards, input: f"--tokens {input.tokens}" if input.tokens else ""
SAEM_SWEEP_FILES = ["sweep.json", "norms.safetensors"]


rule saem_sweep:
    """Every method of one site, each an SAE per L1 coefficient trained as one batched SAE;
    loss recovered and L0 on held-out rows; the SAEs in SAELens format."""
    input:
        model=SAEM_LM.inputs,
        tokens=SAEM_TOKENS,
        code=code_inputs("replications.sae_methods.scripts.sweep"),
    output:
        **{Path(f).stem: f"{SAEM_R}/sweep/{{site}}/{f}" for f in SAEM_SWEEP_FILES},
    wildcard_constraints:
        site="|".join(SAEM_SITES),
    params:
        profile=PROFILE,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else SAEM_SITE_MODEL[wildcards.site]),
        tokens=SAEM_TOKENS_ARG,
        out_dir=lambda wildcards, output: str(Path(output.sweep).parent),
        checkpoint_dir=SAEM_CKPT,
        # Wall time per step: beside the log, not a result (results are byte-stable).
        timing=lambda wildcards: f"{SAEM_LOG}/sweep_{wildcards.site}.timing.json",
        code_sha=code_hash("replications.sae_methods.scripts.sweep"),
        **config_params("sae_methods.model", "sae_methods.data", "sae_methods.sae",
                        "sae_methods.methods", "sae_methods.sites"),
    log:
        f"{SAEM_LOG}/sweep_{{site}}.log",
    benchmark:
        f"{SAEM_LOG}/sweep_{{site}}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=SAEM_MEM,
        gpu=SAEM_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.sae_methods.scripts.sweep --profile {params.profile} "
        "--site {wildcards.site} --model {params.model} {params.tokens} "
        "--out-dir {params.out_dir} --checkpoint-dir {params.checkpoint_dir} "
        "--timing {params.timing} --threads {threads} 2>&1 | tee {log}"


rule saem_ito:
    """Inference-time optimisation (gradient pursuit) on the ITO site's dictionaries, top-k of
    the encoders, a random dictionary; encoder against ITO codes at matched L0."""
    input:
        model=SAEM_LM.inputs,
        tokens=SAEM_TOKENS,
        sweep=f"{SAEM_R}/sweep/{SAEM.ito.site}/sweep.json",
        code=code_inputs("replications.sae_methods.scripts.ito"),
    output:
        json=f"{SAEM_R}/ito/ito.json",
        tensors=f"{SAEM_R}/ito/ito.safetensors",
    params:
        profile=PROFILE,
        model=model_arg(SAEM_SITE_MODEL[SAEM.ito.site]),
        tokens=SAEM_TOKENS_ARG,
        sweep=lambda wildcards, input: str(Path(input.sweep).parent),
        out_dir=lambda wildcards, output: str(Path(output.json).parent),
        code_sha=code_hash("replications.sae_methods.scripts.ito"),
        **config_params("sae_methods.model", "sae_methods.data", "sae_methods.sites",
                        "sae_methods.ito"),
    log:
        f"{SAEM_LOG}/ito.log",
    benchmark:
        f"{SAEM_LOG}/ito.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=SAEM_MEM,
        gpu=SAEM_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.sae_methods.scripts.ito --profile {params.profile} "
        "--model {params.model} {params.tokens} --sweep {params.sweep} "
        "--out-dir {params.out_dir} --threads {threads} 2>&1 | tee {log}"


rule saem_analyse:
    """Every number the claims check: Pareto gaps at matched L0, the K sweeps, decoder-norm
    clusters, the ITO comparisons."""
    input:
        sweeps=expand(f"{SAEM_R}/sweep/{{site}}/sweep.json", site=SAEM_SITES),
        ito=rules.saem_ito.output.json,
        code=code_inputs("replications.sae_methods.scripts.analyse"),
    output:
        f"{SAEM_R}/analysis/analysis.json",
    params:
        profile=PROFILE,
        sweeps=lambda wildcards, input: " ".join(str(Path(s).parent) for s in input.sweeps),
        ito=lambda wildcards, input: str(Path(input.ito).parent),
        code_sha=code_hash("replications.sae_methods.scripts.analyse"),
        **config_params("sae_methods.comparisons"),
    log:
        f"{SAEM_LOG}/analyse.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.sae_methods.scripts.analyse --profile {params.profile} "
        "--sweeps {params.sweeps} --ito {params.ito} --out {output} --threads {threads} "
        "2>&1 | tee {log}"


rule saem_figures:
    """The figures of the three snippets."""
    input:
        sweeps=expand(f"{SAEM_R}/sweep/{{site}}/sweep.json", site=SAEM_SITES),
        ito=rules.saem_ito.output,
        analysis=rules.saem_analyse.output,
        code=code_inputs("replications.sae_methods.scripts.make_figures"),
    output:
        **{name: figure_output("sae_methods", name) for name in pipeline.figures("sae_methods")},
        **{f"{name}_pdf": f"{SAEM_FIG}/{name}.pdf" for name in pipeline.figures("sae_methods")},
    params:
        profile=PROFILE,
        sweeps=lambda wildcards, input: " ".join(str(Path(s).parent) for s in input.sweeps),
        ito=lambda wildcards, input: str(Path(input.ito[0]).parent),
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.sae_methods.scripts.make_figures"),
        # The figures' provenance hashes the whole config: every section is declared.
        **config_params("sae_methods.model", "sae_methods.data", "sae_methods.sae",
                        "sae_methods.methods", "sae_methods.sites", "sae_methods.comparisons",
                        "sae_methods.ito"),
    log:
        f"{SAEM_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.sae_methods.scripts.make_figures --profile {params.profile} "
        "--sweeps {params.sweeps} --ito {params.ito} --analysis {input.analysis} "
        "--figure-dir {params.figure_dir} --threads {threads} 2>&1 | tee {log}"


rule saem_metrics:
    """Every number the claims file checks, in one metrics.json."""
    input:
        analysis=rules.saem_analyse.output,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "sae_methods"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{SAEM_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} analysis={input.analysis} 2>&1 | tee {log}"


rule saem_all:
    """Every figure and the metrics of the SAE-methods write-up."""
    input:
        expand(f"{SAEM_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("sae_methods")),
               ext=["png", "pdf"]),
        rules.saem_metrics.output,
