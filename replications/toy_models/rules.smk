# Toy-models replication: SAEs on Toy Models of Superposition and on Tracr-compiled models
# (GDM progress update, "SAEs on Tracr and Toy Models"). Steps as in replications/toy_models/README.md.

from pathlib import Path

from replications.toy_models import config as toy_config

TOY = pipeline.load_writeup_config(toy_config, PROFILE)
TOY_R = pipeline.results_dir(PROFILE, "toy_models")
TOY_FIG = f"{TOY_R}/figures"
TOY_CKPT = f"results/{PROFILE}/checkpoints/toy_models"
TOY_LOG = f"{LOGS}/toy_models"
# Training jobs want a GPU only at paper scale; the rest of the DAG is CPU work.
TOY_GPU = 1 if BASE_PROFILE == "paper" else 0


rule toy_tms_train:
    """Step 1: train the ReLU-output TMS sweeps (5/2 geometry; feature dimensionality)."""
    input:
        code=code_inputs("replications.toy_models.scripts.tms_train"),
    output:
        weights=f"{TOY_R}/tms/weights.safetensors",
        log=f"{TOY_R}/tms/train_log.json",
    params:
        profile=PROFILE,
        ckpt=TOY_CKPT,
        code_sha=code_hash("replications.toy_models.scripts.tms_train"),
        **config_params("toy_models.device", "toy_models.seed", "toy_models.tms"),
    log:
        f"{TOY_LOG}/tms_train.log",
    threads: 1
    resources:
        mem_mb=2000,
        gpu=TOY_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tms_train --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --out {output.weights} "
        "--log {output.log} 2>&1 | tee {log}"


rule toy_tms_figures:
    """Step 1 figures: geometry across sparsity and per-feature dimensionality."""
    input:
        weights=rules.toy_tms_train.output.weights,
        code=code_inputs("replications.toy_models.scripts.tms_figures"),
    output:
        metrics=f"{TOY_R}/tms/metrics.json",
        geometry=figure_output("toy_models", "tms_geometry"),
        geometry_pdf=f"{TOY_FIG}/tms_geometry.pdf",
        dim=figure_output("toy_models", "tms_dimensionality"),
        dim_pdf=f"{TOY_FIG}/tms_dimensionality.pdf",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.toy_models.scripts.tms_figures"),
        **config_params("toy_models.tms"),
    log:
        f"{TOY_LOG}/tms_figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tms_figures --profile {params.profile} "
        "--weights {input.weights} --metrics {output.metrics} --figure-geometry {output.geometry} "
        "--figure-dimensionality {output.dim} 2>&1 | tee {log}"


rule toy_sae_tms_sweep:
    """Step 2: SAEs on a TMS hidden state, width x L1 sweep, MMCS against the true directions."""
    input:
        code=code_inputs("replications.toy_models.scripts.sae_tms_sweep"),
    output:
        results=f"{TOY_R}/sae_tms/sweep.json",
        weights=f"{TOY_R}/sae_tms/sweep.safetensors",
    params:
        profile=PROFILE,
        ckpt=TOY_CKPT,
        code_sha=code_hash("replications.toy_models.scripts.sae_tms_sweep"),
        **config_params("toy_models.device", "toy_models.sae_tms", "toy_models.seed"),
    log:
        f"{TOY_LOG}/sae_tms_sweep.log",
    threads: 1
    resources:
        mem_mb=2000,
        gpu=TOY_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.sae_tms_sweep --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --out {output.results} "
        "--weights {output.weights} 2>&1 | tee {log}"


rule toy_sae_tms_resampling:
    """Step 3: with and without resampling as the features-to-dimensions ratio grows."""
    input:
        code=code_inputs("replications.toy_models.scripts.sae_tms_resampling"),
    output:
        results=f"{TOY_R}/sae_tms/resampling.json",
        weights=f"{TOY_R}/sae_tms/resampling.safetensors",
    params:
        profile=PROFILE,
        ckpt=TOY_CKPT,
        code_sha=code_hash("replications.toy_models.scripts.sae_tms_resampling"),
        **config_params("toy_models.device", "toy_models.sae_tms", "toy_models.seed"),
    log:
        f"{TOY_LOG}/sae_tms_resampling.log",
    threads: 1
    resources:
        mem_mb=2000,
        gpu=TOY_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.sae_tms_resampling --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --out {output.results} "
        "--weights {output.weights} 2>&1 | tee {log}"


rule toy_sae_tms_figures:
    """Steps 2-3 figures: MMCS heatmap, MMCS against width, resampling study."""
    input:
        sweep=rules.toy_sae_tms_sweep.output.results,
        resampling=rules.toy_sae_tms_resampling.output.results,
        code=code_inputs("replications.toy_models.scripts.sae_tms_figures"),
    output:
        metrics=f"{TOY_R}/sae_tms/metrics.json",
        heatmap=figure_output("toy_models", "sae_tms_mmcs_heatmap"),
        heatmap_pdf=f"{TOY_FIG}/sae_tms_mmcs_heatmap.pdf",
        width=figure_output("toy_models", "sae_tms_mmcs_vs_width"),
        width_pdf=f"{TOY_FIG}/sae_tms_mmcs_vs_width.pdf",
        resampling=figure_output("toy_models", "sae_tms_resampling"),
        resampling_pdf=f"{TOY_FIG}/sae_tms_resampling.pdf",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.toy_models.scripts.sae_tms_figures"),
        **config_params("toy_models.sae_tms"),
    log:
        f"{TOY_LOG}/sae_tms_figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.sae_tms_figures --profile {params.profile} "
        "--sweep {input.sweep} --resampling {input.resampling} --metrics {output.metrics} "
        "--figure-heatmap {output.heatmap} --figure-width {output.width} "
        "--figure-resampling {output.resampling} 2>&1 | tee {log}"


rule toy_tracr_compile:
    """Step 4: compile a RASP program with tracr, convert it to a HookedTransformer, check equality."""
    input:
        code=code_inputs("replications.toy_models.scripts.tracr_compile"),
    output:
        model=f"{TOY_R}/tracr/{{program}}/model.safetensors",
        meta=f"{TOY_R}/tracr/{{program}}/model.json",
        domain=f"{TOY_R}/tracr/{{program}}/domain.safetensors",
    params:
        profile=PROFILE,
        out_dir=lambda wildcards: f"{TOY_R}/tracr/{wildcards.program}",
        code_sha=code_hash("replications.toy_models.scripts.tracr_compile"),
        **config_params("toy_models.device", "toy_models.seed", "toy_models.tracr"),
    wildcard_constraints:
        program="|".join(TOY.tracr.programs),
    log:
        f"{TOY_LOG}/tracr_compile_{{program}}.log",
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tracr_compile --profile {params.profile} "
        "--threads {threads} --program {wildcards.program} --out-dir {params.out_dir} "
        "2>&1 | tee {log}"


rule toy_tracr_sae:
    """Step 5: SAEs on the uncompressed residual streams; recovery per RASP variable."""
    input:
        models=expand(f"{TOY_R}/tracr/{{program}}/model.safetensors", program=TOY.tracr.programs),
        meta=expand(f"{TOY_R}/tracr/{{program}}/model.json", program=TOY.tracr.programs),
        code=code_inputs("replications.toy_models.scripts.tracr_sae"),
    output:
        results=f"{TOY_R}/tracr/sae.json",
        figure=figure_output("toy_models", "tracr_sae_recovery"),
        figure_pdf=f"{TOY_FIG}/tracr_sae_recovery.pdf",
    params:
        profile=PROFILE,
        ckpt=TOY_CKPT,
        models=lambda wildcards, input: " ".join(str(Path(p).parent) for p in input.models),
        code_sha=code_hash("replications.toy_models.scripts.tracr_sae"),
        **config_params("toy_models.device", "toy_models.seed", "toy_models.tracr"),
    log:
        f"{TOY_LOG}/tracr_sae.log",
    threads: 1
    resources:
        mem_mb=2000,
        gpu=TOY_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tracr_sae --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --models {params.models} "
        "--out {output.results} --figure {output.figure} 2>&1 | tee {log}"


rule toy_tracr_compress:
    """Step 6: learn one compression matrix shared by every read and write, per width."""
    input:
        model=f"{TOY_R}/tracr/{{program}}/model.safetensors",
        meta=f"{TOY_R}/tracr/{{program}}/model.json",
        domain=f"{TOY_R}/tracr/{{program}}/domain.safetensors",
        code=code_inputs("replications.toy_models.scripts.tracr_compress"),
    output:
        results=f"{TOY_R}/compression/{{program}}.json",
        weights=f"{TOY_R}/compression/{{program}}.safetensors",
    params:
        profile=PROFILE,
        ckpt=TOY_CKPT,
        model_dir=lambda wildcards, input: str(Path(input.model).parent),
        code_sha=code_hash("replications.toy_models.scripts.tracr_compress"),
        **config_params("toy_models.compression", "toy_models.device", "toy_models.seed"),
    wildcard_constraints:
        program="|".join(TOY.compression.programs),
    log:
        f"{TOY_LOG}/tracr_compress_{{program}}.log",
    threads: 1
    resources:
        mem_mb=2000,
        gpu=TOY_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tracr_compress --profile {params.profile} "
        "--threads {threads} --checkpoint-dir {params.ckpt} --program {wildcards.program} "
        "--model-dir {params.model_dir} --out {output.results} --weights {output.weights} "
        "2>&1 | tee {log}"


rule toy_tracr_compression_figures:
    """Step 6 figures: accuracy against width, singular values of the learned matrices."""
    input:
        results=expand(f"{TOY_R}/compression/{{program}}.json", program=TOY.compression.programs),
        code=code_inputs("replications.toy_models.scripts.tracr_compression_figures"),
    output:
        metrics=f"{TOY_R}/compression/metrics.json",
        accuracy=figure_output("toy_models", "tracr_compression_accuracy"),
        accuracy_pdf=f"{TOY_FIG}/tracr_compression_accuracy.pdf",
        sv=figure_output("toy_models", "tracr_compression_singular_values"),
        sv_pdf=f"{TOY_FIG}/tracr_compression_singular_values.pdf",
    params:
        profile=PROFILE,
        code_sha=code_hash("replications.toy_models.scripts.tracr_compression_figures"),
        **config_params("toy_models.compression"),
    log:
        f"{TOY_LOG}/tracr_compression_figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.toy_models.scripts.tracr_compression_figures "
        "--profile {params.profile} --results {input.results} --metrics {output.metrics} "
        "--accuracy-figure {output.accuracy} --sv-figure {output.sv} 2>&1 | tee {log}"


rule toy_metrics:
    """Step 7: every number the claims file checks, in one metrics.json."""
    input:
        tms=rules.toy_tms_figures.output.metrics,
        sae_tms=rules.toy_sae_tms_figures.output.metrics,
        tracr_sae=rules.toy_tracr_sae.output.results,
        compression=rules.toy_tracr_compression_figures.output.metrics,
        tracr=expand(f"{TOY_R}/tracr/{{program}}/model.json", program=TOY.tracr.programs),
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "toy_models"),
    params:
        tracr=lambda wildcards, input: " ".join(
            f"tracr_check.{Path(p).parent.name}={p}:check" for p in input.tracr
        ),
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{TOY_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} tms={input.tms} sae_tms={input.sae_tms} "
        "tracr_sae={input.tracr_sae}:metrics compression={input.compression} {params.tracr} "
        "2>&1 | tee {log}"


rule toy_all:
    """Every figure and the metrics of the toy-models replication."""
    input:
        expand(f"{TOY_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("toy_models")),
               ext=["png", "pdf"]),
        rules.toy_metrics.output,
