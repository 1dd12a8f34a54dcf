# The model zoo: every stand-in language model (corpus -> tokenizer -> LM) is built by the three
# rules below, and every SAE that stands in for a published one by the rule zoo_sae, whichever
# write-up asks for it; no write-up writes training rules of its own for them.
#
# The write-up whose config holds a stand-in's settings (its `corpus`, `tokenizer` and `lm`
# sections) declares the model by name in its rules file with `zoo_stand_in(...)` (defined in
# shared/common.smk), which returns where the model's files are. All of one model's files live
# in one folder, results/<profile>/<owner>/{corpus,tokenizer,lm}/, and scripts load the model
# from it with shared.lm.load_model, the function that loads a published model by name in the
# paper profile.
#
# SAEs likewise: `zoo_sae(name, owner, cfg, model=..., tokens=...)` declares one from the
# owner's config (`cfg.zoo_sae()`, a shared.sae_zoo.ZooSAEConfig: its `sae` and `sae_run`
# sections, the hook, the token rows and the evaluation's thresholds) on a zoo stand-in or a
# published model by name. One SAE per owner, in every profile: zoo_sae trains it on that model
# or, with `sae_run.source: load`, loads a SAELens directory, evaluates it, and writes
# results/<profile>/<owner>/sae/ (the SAELens files cfg.json, sae_weights.safetensors,
# sparsity.safetensors, plus frequency.safetensors, history.json, eval.json; its checkpoint in
# results/<profile>/checkpoints/<owner>/sae.safetensors). Scripts load it with
# shared.sae_io.load_sae, which reads a published SAELens directory the same way. SAEs that are
# the experiment itself stay in their write-up's rules: monosemanticity's (trained in the paper
# profile too, they are what it replicates) and the toy models' SAE sweeps.
#
# Included by the Snakefile after the write-ups' rules, so that every model is declared before
# these rules read the registries (ZOO, ZOO_SAES).

ZOO_R = f"results/{PROFILE}/{{owner}}"
# Only the owners of declared stand-ins (none in the paper profile: nothing matches).
ZOO_OWNERS = "|".join(m["owner"] for m in ZOO.values()) or "(?!)"


rule zoo_corpus:
    """Model zoo, step 1: the local prose + code corpus (plus the owner's extra documents)."""
    input:
        extra_docs=lambda wildcards: _zoo_entry(wildcards)["extra_docs"],
        code=code_inputs("shared.scripts.build_corpus"),
    output:
        train=f"{ZOO_R}/corpus/train.txt",
        val=f"{ZOO_R}/corpus/val.txt",
        manifest=f"{ZOO_R}/corpus/manifest.json",
    params:
        profile=PROFILE,
        config=_zoo_config("corpus"),
        extra=lambda wildcards, input: " ".join(f"--extra-docs {p}" for p in input.extra_docs),
        out_dir=lambda wildcards, output: str(Path(output.manifest).parent),
        code_sha=code_hash("shared.scripts.build_corpus"),
    wildcard_constraints:
        owner=ZOO_OWNERS,
    log:
        f"{LOGS}/{{owner}}/corpus.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        ENV
    shell:
        "python -m shared.scripts.build_corpus --writeup {wildcards.owner} "
        "--profile {params.profile} --config {params.config:q} --out-dir {params.out_dir} "
        "{params.extra} 2>&1 | tee {log}"


rule zoo_tokenizer:
    """Model zoo, step 2: byte-level BPE and fixed-length token rows, BOS first."""
    input:
        train=rules.zoo_corpus.output.train,
        val=rules.zoo_corpus.output.val,
        code=code_inputs("shared.scripts.train_tokenizer"),
    output:
        tokenizer=f"{ZOO_R}/tokenizer/tokenizer.json",
        tokens=f"{ZOO_R}/tokenizer/tokens.safetensors",
        manifest=f"{ZOO_R}/tokenizer/manifest.json",
    params:
        profile=PROFILE,
        config=_zoo_config("tokenizer"),
        corpus_dir=lambda wildcards, input: str(Path(input.train).parent),
        out_dir=lambda wildcards, output: str(Path(output.tokens).parent),
        code_sha=code_hash("shared.scripts.train_tokenizer"),
    wildcard_constraints:
        owner=ZOO_OWNERS,
    log:
        f"{LOGS}/{{owner}}/tokenizer.log",
    threads: 1
    resources:
        mem_mb=3000,
    conda:
        ENV
    shell:
        "python -m shared.scripts.train_tokenizer --writeup {wildcards.owner} "
        "--profile {params.profile} --config {params.config:q} "
        "--corpus-dir {params.corpus_dir} --out-dir {params.out_dir} 2>&1 | tee {log}"


rule zoo_lm:
    """Model zoo, step 3: train the stand-in LM (resumable); loss curve beside it."""
    input:
        tokens=rules.zoo_tokenizer.output.tokens,
        tokenizer=rules.zoo_tokenizer.output.tokenizer,
        code=code_inputs("shared.scripts.train_lm"),
    output:
        model=f"{ZOO_R}/lm/model.safetensors",
        config=f"{ZOO_R}/lm/lm_config.json",
        history=f"{ZOO_R}/lm/history.json",
        loss=f"{ZOO_R}/lm/lm_loss.png",
        loss_pdf=f"{ZOO_R}/lm/lm_loss.pdf",
    params:
        profile=PROFILE,
        config=_zoo_config("lm"),
        ckpt=f"results/{PROFILE}/checkpoints/{{owner}}",
        tokenizer_dir=lambda wildcards, input: str(Path(input.tokenizer).parent),
        out_dir=lambda wildcards, output: str(Path(output.model).parent),
        code_sha=code_hash("shared.scripts.train_lm"),
    wildcard_constraints:
        owner=ZOO_OWNERS,
    log:
        f"{LOGS}/{{owner}}/lm.log",
    threads: lambda wildcards: _zoo_entry(wildcards)["threads"]
    resources:
        mem_mb=3000,
    conda:
        ENV
    shell:
        "python -m shared.scripts.train_lm --writeup {wildcards.owner} "
        "--profile {params.profile} --config {params.config:q} --tokens {input.tokens} "
        "--tokenizer-dir {params.tokenizer_dir} --out-dir {params.out_dir} "
        "--checkpoint-dir {params.ckpt} --figure {output.loss} --threads {threads} "
        "2>&1 | tee {log}"


ZOO_SAE_R = f"results/{PROFILE}/{{owner}}/sae"
# Only the owners of declared SAEs.
ZOO_SAE_OWNERS = "|".join(s["owner"] for s in ZOO_SAES.values()) or "(?!)"


rule zoo_sae:
    """Model zoo: an SAE standing in for a published one, trained on its (stand-in) LM or loaded
    from a SAELens directory (the owner's `sae_run.source`), evaluated on held-out rows."""
    input:
        tokens=_zoo_sae("tokens"),
        model=_zoo_sae("model_inputs"),
        code=code_inputs("shared.scripts.train_sae"),
    output:
        **{key: f"{ZOO_SAE_R}/{file}" for key, file in ZOO_SAE_FILES.items()},
    params:
        profile=PROFILE,
        config=_zoo_sae("config"),
        # The stand-in's folder where its files are staged, or the published model's name.
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else _zoo_sae_entry(wildcards)["model"]),
        ckpt=f"results/{PROFILE}/checkpoints/{{owner}}",
        out_dir=lambda wildcards, output: str(Path(output.weights).parent),
        code_sha=code_hash("shared.scripts.train_sae"),
    wildcard_constraints:
        owner=ZOO_SAE_OWNERS,
    log:
        f"{LOGS}/{{owner}}/sae.log",
    threads: 1
    resources:
        mem_mb=lambda wildcards: _zoo_sae_entry(wildcards)["mem_mb"],
        gpu=lambda wildcards: _zoo_sae_entry(wildcards)["gpu"],
    conda:
        ENV
    shell:
        "python -m shared.scripts.train_sae --writeup {wildcards.owner} "
        "--profile {params.profile} --config {params.config:q} --model {params.model} "
        "--tokens {input.tokens} --out-dir {params.out_dir} --checkpoint-dir {params.ckpt} "
        "--threads {threads} 2>&1 | tee {log}"
