# Local processing (fact finding post 5): do early layers specialise in local processing?
# Steps as in replications/local_processing/README.md.
#
# The model is the fact-finding write-up's, handed over as the named artifacts its manifest
# provides and ours uses (writeup.yaml): its Pythia-shaped 6-layer stand-in in smoke/default
# (prompts from the validation rows of its tokens), Pythia 2.8B by name in paper (prompts:
# NeelNanda/pile-10k by name). Nothing is trained here.

from pathlib import Path

from replications.local_processing import config as local_config

LOCAL = pipeline.load_writeup_config(local_config, PROFILE)
LOCAL_R = pipeline.results_dir(PROFILE, "local_processing")
LOCAL_FIG = f"{LOCAL_R}/figures"
LOCAL_LOG = f"{LOGS}/local_processing"
LOCAL_HARVEST = f"{LOCAL_R}/harvest"
LOCAL_STAND_IN = LOCAL.data.source == "stand_in"
LOCAL_LM = pipeline.handoff(PROFILE, "local_processing", "fact_finding", "lm", LOCAL_STAND_IN)
# Stand-in: the prompts are validation rows of the stand-in's corpus; paper: none (by name).
LOCAL_TOKENS = pipeline.handoff(PROFILE, "local_processing", "fact_finding", "tokens",
                                LOCAL_STAND_IN).inputs
LOCAL_GPU = 0 if LOCAL_STAND_IN else 1
# Paper: Pythia 2.8B in fp32 (11 GB) plus 16k x 32 x 2560 full-context residuals (5 GB).
LOCAL_MEM = 3000 if LOCAL_STAND_IN else 40000


rule local_harvest:
    """Steps 1-3: prompts, full-context and truncated-context residuals after every block,
    mean-centred cosines (all truncated variants batched), random-pair baseline, categories."""
    input:
        model=LOCAL_LM.inputs,
        tokens=LOCAL_TOKENS,
        code=code_inputs("replications.local_processing.scripts.harvest"),
    output:
        tensors=f"{LOCAL_HARVEST}/harvest.safetensors",
        info=f"{LOCAL_HARVEST}/harvest.json",
    params:
        profile=PROFILE,
        # The stand-in's directory (where its files are), or the model's name in paper.
        model=model_arg(LOCAL_LM.spec),
        tokens=lambda wildcards, input: f"--tokens {input.tokens}" if input.tokens else "",
        out_dir=lambda wildcards, output: str(Path(output.tensors).parent),
        code_sha=code_hash("replications.local_processing.scripts.harvest"),
        **config_params(
            "local_processing.categories", "local_processing.data", "local_processing.harvest",
        ),
    log:
        f"{LOCAL_LOG}/harvest.log",
    threads: 1
    resources:
        mem_mb=LOCAL_MEM,
        gpu=LOCAL_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.local_processing.scripts.harvest --profile {params.profile} "
        "--model {params.model} {params.tokens} --out-dir {params.out_dir} "
        "--threads {threads} 2>&1 | tee {log}"


rule local_analyse:
    """Step 4: medians and quartiles per context and layer, trend, tail, token categories."""
    input:
        harvest=rules.local_harvest.output,
        code=code_inputs("replications.local_processing.scripts.analyse"),
    output:
        f"{LOCAL_R}/analysis/analysis.json",
    params:
        profile=PROFILE,
        harvest=lambda wildcards, input: str(Path(input.harvest[0]).parent),
        code_sha=code_hash("replications.local_processing.scripts.analyse"),
        **config_params(
            "local_processing.analysis", "local_processing.categories", "local_processing.data",
            "local_processing.figures",
        ),
    log:
        f"{LOCAL_LOG}/analyse.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.local_processing.scripts.analyse --profile {params.profile} "
        "--harvest {params.harvest} --out {output} --threads {threads} 2>&1 | tee {log}"


rule local_figures:
    """Step 5: the figures (median by layer, distribution, categories, squared cosine)."""
    input:
        harvest=rules.local_harvest.output,
        analysis=rules.local_analyse.output,
        code=code_inputs("replications.local_processing.scripts.make_figures"),
    output:
        **{name: figure_output("local_processing", name)
           for name in pipeline.figures("local_processing")},
        **{f"{name}_pdf": f"{LOCAL_FIG}/{name}.pdf"
           for name in pipeline.figures("local_processing")},
    params:
        profile=PROFILE,
        harvest=lambda wildcards, input: str(Path(input.harvest[0]).parent),
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.local_processing.scripts.make_figures"),
        **config_params(
            "local_processing.analysis", "local_processing.categories", "local_processing.data",
            "local_processing.figures", "local_processing.harvest",
        ),
    log:
        f"{LOCAL_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.local_processing.scripts.make_figures "
        "--profile {params.profile} --harvest {params.harvest} --analysis {input.analysis} "
        "--figure-dir {params.figure_dir} --threads {threads} 2>&1 | tee {log}"


rule local_metrics:
    """Step 6: every number the claims file checks, in one metrics.json."""
    input:
        analysis=rules.local_analyse.output,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "local_processing"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{LOCAL_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} analysis={input.analysis} "
        "2>&1 | tee {log}"


rule local_all:
    """Every figure and the metrics of the local-processing replication."""
    input:
        expand(f"{LOCAL_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("local_processing")),
               ext=["png", "pdf"]),
        rules.local_metrics.output,
