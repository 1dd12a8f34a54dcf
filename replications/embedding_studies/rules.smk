# Embedding studies: Puzzle 1 (anisotropic embeddings), Puzzle 2 (word2vec-style directions),
# emergent positional embeddings. Steps as in replications/embedding_studies/README.md.
#
# The model is the steering write-up's GPT-2-shaped stand-in, handed over as the named artifacts
# its manifest provides and ours uses (writeup.yaml), with the validation rows of its tokens as
# text (smoke, default). Paper: GPT-Neo 125M (Puzzle 1) and GPT-2 small (the rest) by name, text
# NeelNanda/pile-10k by name. Nothing is trained here but linear read-outs.

from pathlib import Path

from replications.embedding_studies import config as emb_config

EMB = pipeline.load_writeup_config(emb_config, PROFILE)
EMB_R = pipeline.results_dir(PROFILE, "embedding_studies")
EMB_FIG = f"{EMB_R}/figures"
EMB_LOG = f"{LOGS}/embedding_studies"
EMB_STAND_IN = EMB.model.source == "stand_in"
EMB_LM = pipeline.handoff(PROFILE, "embedding_studies", "steering", "lm", EMB_STAND_IN)
EMB_TOKENS = pipeline.handoff(PROFILE, "embedding_studies", "steering", "tokens",
                              EMB_STAND_IN).inputs
# Paper: GPT-Neo 125M / GPT-2 small in fp32 (0.5 GB) and their residuals: a GPU is faster.
EMB_GPU = 0 if EMB_STAND_IN else 1
EMB_MEM = 2000 if EMB_STAND_IN else 16000
EMB_TOKENS_ARG = lambda wildcards, input: f"--tokens {input.tokens}" if input.tokens else ""


rule emb_puzzle1:
    """Puzzle 1: pairwise cosines of W_E (raw, centred, top PCs removed) and of the residual
    stream at every layer."""
    input:
        model=EMB_LM.inputs,
        tokens=EMB_TOKENS,
        code=code_inputs("replications.embedding_studies.scripts.puzzle1"),
    output:
        f"{EMB_R}/puzzle1/puzzle1.json",
    params:
        profile=PROFILE,
        model=model_arg(EMB.model.puzzle1),
        tokens=EMB_TOKENS_ARG,
        out_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.embedding_studies.scripts.puzzle1"),
        **config_params("embedding_studies.model", "embedding_studies.text",
                        "embedding_studies.puzzle1"),
    log:
        f"{EMB_LOG}/puzzle1.log",
    benchmark:
        f"{EMB_LOG}/puzzle1.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=EMB_MEM,
        gpu=EMB_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.embedding_studies.scripts.puzzle1 --profile {params.profile} "
        "--model {params.model} {params.tokens} --out-dir {params.out_dir} "
        "--threads {threads} 2>&1 | tee {log}"


rule emb_directions:
    """Puzzle 2: token-length regression, its steps, and the binary directions of W_E."""
    input:
        model=EMB_LM.inputs,
        code=code_inputs("replications.embedding_studies.scripts.directions"),
    output:
        json=f"{EMB_R}/directions/directions.json",
        tensors=f"{EMB_R}/directions/directions.safetensors",
    params:
        profile=PROFILE,
        model=model_arg(EMB.model.main),
        out_dir=lambda wildcards, output: str(Path(output.json).parent),
        code_sha=code_hash("replications.embedding_studies.scripts.directions"),
        **config_params("embedding_studies.model", "embedding_studies.directions"),
    log:
        f"{EMB_LOG}/directions.log",
    benchmark:
        f"{EMB_LOG}/directions.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=EMB_MEM,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.embedding_studies.scripts.directions --profile {params.profile} "
        "--model {params.model} --out-dir {params.out_dir} --threads {threads} 2>&1 | tee {log}"


rule emb_positional:
    """Emergent positional embeddings: word-index probes at every layer, position-balanced,
    against the position + space baseline."""
    input:
        model=EMB_LM.inputs,
        tokens=EMB_TOKENS,
        code=code_inputs("replications.embedding_studies.scripts.positional"),
    output:
        json=f"{EMB_R}/positional/positional.json",
        tensors=f"{EMB_R}/positional/positional.safetensors",
    params:
        profile=PROFILE,
        model=model_arg(EMB.model.main),
        tokens=EMB_TOKENS_ARG,
        out_dir=lambda wildcards, output: str(Path(output.json).parent),
        code_sha=code_hash("replications.embedding_studies.scripts.positional"),
        **config_params("embedding_studies.model", "embedding_studies.text",
                        "embedding_studies.positional"),
    log:
        f"{EMB_LOG}/positional.log",
    benchmark:
        f"{EMB_LOG}/positional.benchmark.tsv"
    threads: 1
    resources:
        mem_mb=EMB_MEM,
        gpu=EMB_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.embedding_studies.scripts.positional --profile {params.profile} "
        "--model {params.model} {params.tokens} --out-dir {params.out_dir} "
        "--threads {threads} 2>&1 | tee {log}"


rule emb_figures:
    """The figures of the three studies."""
    input:
        puzzle1=rules.emb_puzzle1.output,
        directions=rules.emb_directions.output,
        positional=rules.emb_positional.output,
        code=code_inputs("replications.embedding_studies.scripts.make_figures"),
    output:
        **{name: figure_output("embedding_studies", name)
           for name in pipeline.figures("embedding_studies")},
        **{f"{name}_pdf": f"{EMB_FIG}/{name}.pdf"
           for name in pipeline.figures("embedding_studies")},
    params:
        profile=PROFILE,
        puzzle1=lambda wildcards, input: str(Path(input.puzzle1[0]).parent),
        directions=lambda wildcards, input: str(Path(input.directions[0]).parent),
        positional=lambda wildcards, input: str(Path(input.positional[0]).parent),
        figure_dir=lambda wildcards, output: str(Path(output[0]).parent),
        code_sha=code_hash("replications.embedding_studies.scripts.make_figures"),
        # The figures' provenance hashes the whole config: every section is declared.
        **config_params("embedding_studies.model", "embedding_studies.text",
                        "embedding_studies.puzzle1", "embedding_studies.directions",
                        "embedding_studies.positional"),
    log:
        f"{EMB_LOG}/figures.log",
    threads: 1
    resources:
        mem_mb=1000,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
        "python -m replications.embedding_studies.scripts.make_figures "
        "--profile {params.profile} --puzzle1 {params.puzzle1} "
        "--directions {params.directions} --positional {params.positional} "
        "--figure-dir {params.figure_dir} --threads {threads} 2>&1 | tee {log}"


rule emb_metrics:
    """Every number the claims file checks, in one metrics.json."""
    input:
        puzzle1=rules.emb_puzzle1.output,
        directions=rules.emb_directions.output.json,
        positional=rules.emb_positional.output.json,
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "embedding_studies"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
    log:
        f"{EMB_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} "
        "puzzle1={input.puzzle1}:headline directions={input.directions} "
        "positional={input.positional} 2>&1 | tee {log}"


rule emb_all:
    """Every figure and the metrics of the embedding studies."""
    input:
        expand(f"{EMB_FIG}/{{name}}.{{ext}}", name=list(pipeline.figures("embedding_studies")),
               ext=["png", "pdf"]),
        rules.emb_metrics.output,
