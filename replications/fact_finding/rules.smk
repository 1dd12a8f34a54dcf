# Fact finding (posts 1, 3 and 4): how early MLPs look up athletes' sports.
# Steps as in replications/fact_finding/README.md.
#
# smoke/default: a synthetic world of people (ff_world) is mixed into the local corpus and a
# Pythia-shaped 6-layer stand-in is trained on it (ff_corpus -> ff_tokenizer -> ff_lm). paper:
# Pythia 2.8B by name and the athlete table in data/. Either way ff_facts puts every fact to the
# model and keeps the two-token names it knows: facts.json, the input of every analysis.
# The local-processing write-up reuses this stand-in through FF_MODEL_INPUT / FF_MODEL_SPEC.

from pathlib import Path

from replications.fact_finding import config as ff_config

FF = pipeline.load_writeup_config(ff_config, PROFILE)
FF_R = pipeline.results_dir(PROFILE, "fact_finding")
FF_FIG = f"{FF_R}/figures"
FF_CKPT = f"results/{PROFILE}/checkpoints/fact_finding"
FF_LOG = f"{LOGS}/fact_finding"
FF_STAND_IN = FF.model.source == "stand_in"
# Pythia 2.8B wants a GPU (and about 12 GB of memory in fp32) for every model pass.
FF_GPU = 0 if FF_STAND_IN else 1
FF_MEM = 3000 if FF_STAND_IN else 32000
FF_LM_DIR = f"{FF_R}/lm"
FF_TOKENS = f"{FF_R}/tokenizer/tokens.safetensors"
FF_WORLD = f"{FF_R}/world/world.json"
FF_FACTS = f"{FF_R}/facts.json"
if FF_STAND_IN:
    FF_MODEL_INPUT = [f"{FF_LM_DIR}/model.safetensors", f"{FF_LM_DIR}/lm_config.json"]
    FF_MODEL_SPEC = FF_LM_DIR
    FF_FACT_SOURCE = [FF_WORLD]
else:
    FF_MODEL_INPUT = []
    FF_MODEL_SPEC = FF.model.name
    FF_FACT_SOURCE = [
        f"replications/fact_finding/{FF.paper_data.athletes}",
        f"replications/fact_finding/{FF.paper_data.entity_facts}",
    ]


if FF_STAND_IN:

    rule ff_world:
        """Step 1a (stand-in only): the synthetic world and its fact documents."""
        output:
            world=FF_WORLD,
            docs=f"{FF_R}/world/documents.jsonl",
        params:
            profile=PROFILE,
        log:
            f"{FF_LOG}/world.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "python -m replications.fact_finding.scripts.make_world --profile {params.profile} "
            "--world {output.world} --docs {output.docs} 2>&1 | tee {log}"

    rule ff_corpus:
        """Step 1b (stand-in only): the local prose + code corpus with the fact documents added."""
        input:
            docs=rules.ff_world.output.docs,
        output:
            train=f"{FF_R}/corpus/train.txt",
            val=f"{FF_R}/corpus/val.txt",
            manifest=f"{FF_R}/corpus/manifest.json",
        params:
            profile=PROFILE,
            out_dir=lambda wildcards, output: str(Path(output.manifest).parent),
        log:
            f"{FF_LOG}/corpus.log",
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.build_corpus --writeup fact_finding "
            "--profile {params.profile} --out-dir {params.out_dir} "
            "--extra-docs {input.docs} 2>&1 | tee {log}"

    rule ff_tokenizer:
        """Step 1c (stand-in only): byte-level BPE and 128-token rows, BOS first."""
        input:
            train=rules.ff_corpus.output.train,
            val=rules.ff_corpus.output.val,
        output:
            tokenizer=f"{FF_R}/tokenizer/tokenizer.json",
            tokens=FF_TOKENS,
            manifest=f"{FF_R}/tokenizer/manifest.json",
        params:
            profile=PROFILE,
            corpus_dir=lambda wildcards, input: str(Path(input.train).parent),
            out_dir=lambda wildcards, output: str(Path(output.tokens).parent),
        log:
            f"{FF_LOG}/tokenizer.log",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.train_tokenizer --writeup fact_finding "
            "--profile {params.profile} --corpus-dir {params.corpus_dir} "
            "--out-dir {params.out_dir} 2>&1 | tee {log}"

    rule ff_lm:
        """Step 1d (stand-in only): train the Pythia-shaped 6-layer stand-in; loss curve."""
        input:
            tokens=rules.ff_tokenizer.output.tokens,
            tokenizer=rules.ff_tokenizer.output.tokenizer,
        output:
            model=f"{FF_LM_DIR}/model.safetensors",
            config=f"{FF_LM_DIR}/lm_config.json",
            history=f"{FF_LM_DIR}/history.json",
            loss=f"{FF_LM_DIR}/loss.png",
            loss_pdf=f"{FF_LM_DIR}/loss.pdf",
        params:
            profile=PROFILE,
            ckpt=FF_CKPT,
            tokenizer_dir=lambda wildcards, input: str(Path(input.tokenizer).parent),
            out_dir=lambda wildcards, output: str(Path(output.model).parent),
        log:
            f"{FF_LOG}/lm.log",
        threads: 1
        resources:
            mem_mb=3000,
        conda:
            ENV
        shell:
            "python -m shared.scripts.train_lm --writeup fact_finding "
            "--profile {params.profile} --tokens {input.tokens} "
            "--tokenizer-dir {params.tokenizer_dir} --out-dir {params.out_dir} "
            "--checkpoint-dir {params.ckpt} --figure {output.loss} --threads {threads} "
            "2>&1 | tee {log}"


rule ff_facts:
    """Step 2: put every fact to the model; keep the two-token names it knows (facts.json)."""
    input:
        source=FF_FACT_SOURCE,
        model=FF_MODEL_INPUT,
    output:
        facts=FF_FACTS,
        recall=figure_output("fact_finding", "recall"),
        recall_pdf=f"{FF_FIG}/recall.pdf",
    params:
        profile=PROFILE,
        model=lambda wildcards, input: (str(Path(input.model[0]).parent) if input.model
                                        else FF.model.name),
        world=lambda wildcards, input: (f"--world {input.source[0]}" if FF_STAND_IN else ""),
    log:
        f"{FF_LOG}/facts.log",
    threads: 1
    resources:
        mem_mb=FF_MEM,
        gpu=FF_GPU,
    conda:
        ENV
    shell:
        "python -m replications.fact_finding.scripts.known_facts --profile {params.profile} "
        "--model {params.model} {params.world} --out {output.facts} "
        "--figure {output.recall} "
        "--threads {threads} 2>&1 | tee {log}"


include: "rules/circuit.smk"
include: "rules/neurons.smk"
include: "rules/memorisation.smk"


rule ff_metrics:
    """Every number the claims read, in one file."""
    input:
        facts=FF_FACTS,
        circuit=f"{FF_R}/circuit/metrics.json",
        neuron_facts=f"{FF_R}/neurons/facts/metrics.json",
        neuron_lookup=f"{FF_R}/neurons/lookup/metrics.json",
        memorisation=f"{FF_R}/memorisation/metrics.json",
    output:
        pipeline.metrics_path(PROFILE, "fact_finding"),
    log:
        f"{FF_LOG}/metrics.log",
    threads: 1
    resources:
        mem_mb=500,
    conda:
        ENV
    shell:
        "python -m shared.merge_metrics --out {output} recall={input.facts}:accuracy "
        "counts={input.facts}:counts circuit={input.circuit} "
        "neurons.facts={input.neuron_facts} neurons.lookup={input.neuron_lookup} "
        "memorisation={input.memorisation} 2>&1 | tee {log}"


rule ff_all:
    """This write-up: every figure and the metrics."""
    input:
        pipeline.figure_paths(PROFILE, "fact_finding"),
        pipeline.figure_paths(PROFILE, "fact_finding", "pdf"),
        pipeline.metrics_path(PROFILE, "fact_finding"),
