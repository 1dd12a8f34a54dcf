# Caesar-cipher replication (ARENA monthly challenge, code-breaking): train the post's
# attention-only model on each mode, analyse it as the solution does, figures and metrics.
# Steps as in replications/caesar_cipher/README.md. Everything is trained inside the DAG.

from pathlib import Path

from replications.caesar_cipher import config as caesar_config

CAESAR = pipeline.load_writeup_config(caesar_config, PROFILE)
CAESAR_R = pipeline.results_dir(PROFILE, "caesar_cipher")
CAESAR_FIG = f"{CAESAR_R}/figures"
CAESAR_CKPT = f"results/{PROFILE}/checkpoints/caesar_cipher"
CAESAR_LOG = f"{LOGS}/caesar_cipher"
CAESAR_MODES = list(CAESAR.train.modes)
# Tiny models: a GPU only pays at the paper profile's 29k steps per mode.
CAESAR_GPU = 1 if BASE_PROFILE == "paper" else 0


rule caesar_train:
    """Steps 1-2: one mode's data from the pinned text, and the post's model trained on it."""
    input:
        code=code_inputs("replications.caesar_cipher.scripts.train"),
    output:
        model=f"{CAESAR_R}/models/{{mode}}.safetensors",
        history=f"{CAESAR_R}/models/{{mode}}_history.json",
    params:
        profile=PROFILE,
        ckpt=CAESAR_CKPT,
        code_sha=code_hash("replications.caesar_cipher.scripts.train"),
        **config_params("caesar_cipher.data", "caesar_cipher.model", "caesar_cipher.train"),
    wildcard_constraints:
        mode="|".join(CAESAR_MODES),
    log:
        f"{CAESAR_LOG}/train_{{mode}}.log",
    benchmark:
        f"{CAESAR_LOG}/train_{{mode}}.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        gpu=CAESAR_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.caesar_cipher.scripts.train --profile {params.profile} "
        "--mode {wildcards.mode} --threads {threads} --checkpoint-dir {params.ckpt} "
        "--out {output.model} --history {output.history} 2>&1 | tee {log}"


rule caesar_analyse:
    """Step 3: accuracy by position for every mode; the solution's circuit analyses."""
    input:
        models=expand(f"{CAESAR_R}/models/{{mode}}.safetensors", mode=CAESAR_MODES),
        code=code_inputs("replications.caesar_cipher.scripts.analyse"),
    output:
        summary=f"{CAESAR_R}/analysis/analysis.json",
        tensors=f"{CAESAR_R}/analysis/tensors.safetensors",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.caesar_cipher.scripts.analyse"),
        **config_params("caesar_cipher.analysis", "caesar_cipher.data", "caesar_cipher.model"),
    log:
        f"{CAESAR_LOG}/analyse.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.caesar_cipher.scripts.analyse --profile {params.profile} "
        "--threads {threads} --models {input.models} --out {output.summary} "
        "--tensors {output.tensors} 2>&1 | tee {log}"


rule caesar_figures:
    """Step 4: the figures."""
    input:
        summary=rules.caesar_analyse.output.summary,
        tensors=rules.caesar_analyse.output.tensors,
        code=code_inputs("replications.caesar_cipher.scripts.make_figures"),
    output:
        **{name: figure_output("caesar_cipher", name)
           for name in pipeline.figures("caesar_cipher")},
        **{f"{name}_pdf": f"{CAESAR_FIG}/{name}.pdf"
           for name in pipeline.figures("caesar_cipher")},
    params:
        profile=PROFILE,
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.caesar_cipher.scripts.make_figures"),
        **config_params(
            "caesar_cipher.analysis", "caesar_cipher.data", "caesar_cipher.model",
            "caesar_cipher.train",
        ),
    log:
        f"{CAESAR_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.caesar_cipher.scripts.make_figures --profile {params.profile} "
        "--analysis {input.summary} --tensors {input.tensors} "
        "--figure-dir {params.figure_dir} 2>&1 | tee {log}"


rule caesar_metrics:
    """Step 5: every number the claims file checks, in one metrics.json."""
    input:
        analysis=rules.caesar_analyse.output.summary,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "caesar_cipher"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{CAESAR_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} analysis={input.analysis} "
        "2>&1 | tee {log}"


rule caesar_all:
    """Every figure and the metrics of the Caesar-cipher replication."""
    input:
        expand(f"{CAESAR_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("caesar_cipher")),
               ext=["png", "pdf"]),
        rules.caesar_metrics.output,
