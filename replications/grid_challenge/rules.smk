# Challenge-2 replication (Casper's transformer challenge; RGRGRG's solution): the labelling
# function (a reconstruction), the challenge's model trained on half the grid, the solution's
# analyses, the hand-set transformer, figures and metrics. Steps as in
# replications/grid_challenge/README.md. Everything is built inside the DAG.

from pathlib import Path

from replications.grid_challenge import config as grid_config

GRID = pipeline.load_writeup_config(grid_config, PROFILE)
GRID_R = pipeline.results_dir(PROFILE, "grid_challenge")
GRID_FIG = f"{GRID_R}/figures"
GRID_CKPT = f"results/{PROFILE}/checkpoints/grid_challenge"
GRID_LOG = f"{LOGS}/grid_challenge"
# A small model on 6,384 inputs: a GPU only pays at the paper profile's 5000 epochs.
GRID_GPU = 1 if PROFILE == "paper" else 0


rule grid_train:
    """Steps 1-2: the grid's labels and split; the challenge's model trained full-batch."""
    input:
        code=code_inputs("replications.grid_challenge.scripts.train"),
    output:
        model=f"{GRID_R}/model/model.safetensors",
        history=f"{GRID_R}/model/history.json",
    params:
        profile=PROFILE,
        ckpt=GRID_CKPT,
        code_sha=code_hash("replications.grid_challenge.scripts.train"),
        **config_params("grid_challenge.data", "grid_challenge.model", "grid_challenge.train"),
    log:
        f"{GRID_LOG}/train.log",
    benchmark:
        f"{GRID_LOG}/train.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        gpu=GRID_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.grid_challenge.scripts.train --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --out {output.model} "
        "--history {output.history} 2>&1 | tee {log}"


rule grid_handset:
    """Step 3: the post's validation, a transformer with hand-set weights (no training)."""
    input:
        code=code_inputs("replications.grid_challenge.scripts.handset"),
    output:
        summary=f"{GRID_R}/handset/handset.json",
        tensors=f"{GRID_R}/handset/tensors.safetensors",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.grid_challenge.scripts.handset"),
        **config_params("grid_challenge.model"),
    log:
        f"{GRID_LOG}/handset.log",
    benchmark:
        f"{GRID_LOG}/handset.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.grid_challenge.scripts.handset --profile {params.profile} "
        "--threads {threads} --out {output.summary} --tensors {output.tensors} 2>&1 | tee {log}"


rule grid_analyse:
    """Step 4: the solution's analyses of the trained model."""
    input:
        model=rules.grid_train.output.model,
        code=code_inputs("replications.grid_challenge.scripts.analyse"),
    output:
        summary=f"{GRID_R}/analysis/analysis.json",
        tensors=f"{GRID_R}/analysis/tensors.safetensors",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.grid_challenge.scripts.analyse"),
        **config_params("grid_challenge.analysis", "grid_challenge.data", "grid_challenge.model"),
    log:
        f"{GRID_LOG}/analyse.log",
    benchmark:
        f"{GRID_LOG}/analyse.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.grid_challenge.scripts.analyse --profile {params.profile} "
        "--threads {threads} --model {input.model} --out {output.summary} "
        "--tensors {output.tensors} 2>&1 | tee {log}"


rule grid_figures:
    """Step 5: the figures."""
    input:
        summary=rules.grid_analyse.output.summary,
        tensors=rules.grid_analyse.output.tensors,
        handset=rules.grid_handset.output.summary,
        handset_tensors=rules.grid_handset.output.tensors,
        code=code_inputs("replications.grid_challenge.scripts.make_figures"),
    output:
        **{name: figure_output("grid_challenge", name)
           for name in pipeline.figures("grid_challenge")},
        **{f"{name}_pdf": f"{GRID_FIG}/{name}.pdf"
           for name in pipeline.figures("grid_challenge")},
    params:
        profile=PROFILE,
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.grid_challenge.scripts.make_figures"),
        **config_params(
            "grid_challenge.analysis", "grid_challenge.data", "grid_challenge.model",
            "grid_challenge.train",
        ),
    log:
        f"{GRID_LOG}/figures.log",
    benchmark:
        f"{GRID_LOG}/figures.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.grid_challenge.scripts.make_figures --profile {params.profile} "
        "--analysis {input.summary} --tensors {input.tensors} --handset {input.handset} "
        "--handset-tensors {input.handset_tensors} --figure-dir {params.figure_dir} "
        "2>&1 | tee {log}"


rule grid_metrics:
    """Step 6: every number the claims file checks, in one metrics.json."""
    input:
        analysis=rules.grid_analyse.output.summary,
        handset=rules.grid_handset.output.summary,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "grid_challenge"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{GRID_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} analysis={input.analysis} "
        "handset={input.handset} 2>&1 | tee {log}"


rule grid_all:
    """Every figure and the metrics of the challenge-2 replication."""
    input:
        expand(f"{GRID_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("grid_challenge")),
               ext=["png", "pdf"]),
        rules.grid_metrics.output,
