# Fact finding (posts 1, 3 and 4): how early MLPs look up athletes' sports.
# Steps as in replications/fact_finding/README.md.
#
# smoke/default: a synthetic world of people (ff_world) is mixed into the local corpus and the
# model zoo (shared/zoo.smk) trains a Pythia-shaped 6-layer stand-in on it from this write-up's
# corpus / tokenizer / lm settings. paper: Pythia 2.8B by name and the athlete table in data/.
# Either way ff_facts puts every fact to the model and keeps the two-token names it knows:
# facts.json, the input of every analysis.
# Other write-ups read the stand-in and its tokens only as the artifacts `lm` and `tokens` that
# writeup.yaml provides (its paths must match the zoo's; the DAG's dry-run test checks they do).

from pathlib import Path

from replications.fact_finding import config as ff_config

FF = pipeline.load_writeup_config(ff_config, PROFILE)
FF_R = pipeline.results_dir(PROFILE, "fact_finding")
FF_FIG = f"{FF_R}/figures"
FF_LOG = f"{LOGS}/fact_finding"
FF_STAND_IN = FF.model.source == "stand_in"
# Pythia 2.8B wants a GPU (and about 12 GB of memory in fp32) for every model pass.
FF_GPU = 0 if FF_STAND_IN else 1
FF_MEM = 3000 if FF_STAND_IN else 32000
FF_WORLD = f"{FF_R}/world/world.json"
FF_WORLD_DOCS = f"{FF_R}/world/documents.jsonl"
FF_FACTS = f"{FF_R}/facts.json"
if FF_STAND_IN:
    # Two threads for its training: the longest job of this write-up (README, Time).
    FF_LM = zoo_stand_in("pythia-facts-stand-in", "fact_finding", FF, extra_docs=[FF_WORLD_DOCS],
                         threads=2)
    FF_MODEL_INPUT = FF_LM.inputs
    FF_FACT_SOURCE = [FF_WORLD]
else:
    FF_MODEL_INPUT = []
    FF_FACT_SOURCE = [
        f"replications/fact_finding/{FF.paper_data.athletes}",
        f"replications/fact_finding/{FF.paper_data.entity_facts}",
    ]


if FF_STAND_IN:

    rule ff_world:
        """Step 1a (stand-in only): the synthetic world and its fact documents."""
        input:
            code=code_inputs("replications.fact_finding.scripts.make_world"),
        output:
            world=FF_WORLD,
            docs=FF_WORLD_DOCS,
        params:
            profile=PROFILE,
            code_sha=code_hash("replications.fact_finding.scripts.make_world"),
            **config_params("fact_finding.world"),
        log:
            f"{FF_LOG}/world.log",
        threads: 1
        resources:
            mem_mb=1000,
        conda:
            ENV
        shell:
            "MI_CONFIG={params.mi_config:q} "
            "python -m replications.fact_finding.scripts.make_world --profile {params.profile} "
            "--world {output.world} --docs {output.docs} 2>&1 | tee {log}"


rule ff_facts:
    """Step 2: put every fact to the model; keep the two-token names it knows (facts.json)."""
    input:
        source=FF_FACT_SOURCE,
        model=FF_MODEL_INPUT,
        code=code_inputs("replications.fact_finding.scripts.known_facts"),
    output:
        facts=FF_FACTS,
        recall=figure_output("fact_finding", "recall"),
        recall_pdf=f"{FF_FIG}/recall.pdf",
    params:
        profile=PROFILE,
        model=model_arg(FF.model.name),
        world=lambda wildcards, input: (f"--world {input.source[0]}" if FF_STAND_IN else ""),
        code_sha=code_hash("replications.fact_finding.scripts.known_facts"),
        **config_params(
            "fact_finding.circuit", "fact_finding.corpus", "fact_finding.lm",
            "fact_finding.memorisation", "fact_finding.model", "fact_finding.neurons",
            "fact_finding.paper_data", "fact_finding.tokenizer", "fact_finding.world",
        ),
    log:
        f"{FF_LOG}/facts.log",
    threads: 1
    resources:
        mem_mb=FF_MEM,
        gpu=FF_GPU,
    conda:
        ENV
    shell:
        "MI_CONFIG={params.mi_config:q} "
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
        code=code_inputs("shared.merge_metrics"),
    output:
        pipeline.metrics_path(PROFILE, "fact_finding"),
    params:
        code_sha=code_hash("shared.merge_metrics"),
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
