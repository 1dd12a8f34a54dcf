# The whole replication DAG. Build every figure of the default profile:
#     snakemake --cores all figures/
# one figure:      snakemake --cores all figures/toy_models/tms_superposition.png
# another scale:   snakemake --cores all figures/ --config profile=smoke|default|paper
# another seed:    snakemake --cores all figures/ --config seed=1   (results/default-seed1/)
# one value:       snakemake --cores all figures/ --config caesar_cipher="{train: {epochs: 2}}"
# seed sweep:      snakemake --cores all robustness/ [--config robustness_seeds=3]
# On a cluster: --profile profiles/slurm (rules declare threads, mem_mb, gpu; the profile runtime).

import os
from pathlib import Path

from shared import config_access, pipeline
from shared.config import ConfigError, base_profile

# Importing `shared` pinned the kernel instruction sets (shared/numerics.py) in this process's
# environment, which every job's python inherits.

try:
    RUN = pipeline.run_config(config)
except ConfigError as err:
    pipeline.fail(err)
# Parse-time config loads and every job see the --config overrides of write-up configs; a rule
# that declares its sections (config_params) narrows what its job may read.
os.environ[config_access.ENV] = config_access.encode(None, RUN.overrides)
# The profile every path and script sees: `<profile>-seed<K>` for --config seed=K > 0.
PROFILE = RUN.profile
# What rules branch on (a GPU at paper scale): the same for every seed of a profile.
BASE_PROFILE = base_profile(PROFILE)

SCORECARD = pipeline.SCORECARD_DIR.format(profile=PROFILE)
LOGS = f"results/{PROFILE}/logs"
# Absolute, since conda paths in included rules files resolve relative to those files.
ENV = str(Path(workflow.basedir) / "env" / "conda.yaml")


include: "shared/common.smk"


for _writeup in pipeline.WRITEUPS:
    include: f"replications/{_writeup}/rules.smk"


# After the write-ups: they declare the stand-in models these rules build.
include: "shared/zoo.smk"


# Write-ups that train something in this profile (training_runs: shared/common.smk).
CURVES_WRITEUPS = [w for w in pipeline.WRITEUPS if training_runs(w)]


rule training_curves:
    """A write-up's training runs: DVCLive logs per run and one figure of their curves."""
    input:
        histories=lambda wildcards: sorted(
            {spec.partition("#")[0] for spec in training_runs(wildcards.writeup).values()}),
        code=code_inputs("shared.curves"),
    output:
        png=f"results/{PROFILE}/{{writeup}}/curves/training_curves.png",
        pdf=f"results/{PROFILE}/{{writeup}}/curves/training_curves.pdf",
        dvclive=directory(f"results/{PROFILE}/{{writeup}}/curves/dvclive"),
    params:
        runs=lambda wildcards: " ".join(f"--run {name} {spec}" for name, spec
                                        in training_runs(wildcards.writeup).items()),
        profile=PROFILE,
        code_sha=code_hash("shared.curves"),
    wildcard_constraints:
        writeup="|".join(CURVES_WRITEUPS),
    log:
        f"{LOGS}/training_curves/{{writeup}}.log",
    conda:
        ENV
    resources:
        mem_mb=500,
    shell:
        "rm -rf {output.dvclive} && python -m shared.curves --writeup {wildcards.writeup} "
        "--profile {params.profile} {params.runs} --dvclive {output.dvclive} "
        "--figure {output.png} 2>&1 | tee {log}"


# Seed sweeps (the robustness/ target); they need the scorecard rule's paths only.
include: "shared/robustness.smk"


# Cheap bookkeeping runs on the submitting host, not as cluster jobs (profiles/slurm).
localrules: all, scorecard, report_html, training_curves, figures, one_figure


rule all:
    default_target: True
    input:
        "figures",


rule scorecard:
    """Every claim of every write-up: published beside reproduced, for this profile."""
    input:
        claims=[pipeline.claims_path(w) for w in pipeline.WRITEUPS],
        metrics=[pipeline.metrics_path(PROFILE, w) for w in pipeline.WRITEUPS],
        code=code_inputs("shared.scorecard"),
    output:
        md=f"{SCORECARD}/scorecard.md",
        json=f"{SCORECARD}/scorecard.json",
        png=report(f"{SCORECARD}/scorecard.png", caption="shared/captions/scorecard.rst",
                   category="Scorecard"),
        pdf=f"{SCORECARD}/scorecard.pdf",
    params:
        writeups=" ".join(
            f"--writeup {w} {pipeline.claims_path(w)} {pipeline.metrics_path(PROFILE, w)}"
            for w in pipeline.WRITEUPS
        ),
        profile=PROFILE,
        code_sha=code_hash("shared.scorecard"),
    log:
        f"{LOGS}/scorecard.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
    shell:
        "python -m shared.scorecard --profile {params.profile} {params.writeups} "
        "--markdown {output.md} --json {output.json} --figure {output.png} 2>&1 | tee {log}"


# A seed sweep's table of this profile, when one has been built (the report shows its counts;
# not an input, which would make every build run the sweep). Its content hash is a param, so a
# new or rebuilt sweep reruns the report.
ROBUSTNESS_JSON = f"results/{BASE_PROFILE}/robustness/robustness_{PROFILE}.json"


rule report_html:
    """One self-contained HTML page: the summary, then per write-up its method, figures with
    captions, and claims, published beside reproduced."""
    input:
        claims=[pipeline.claims_path(w) for w in pipeline.WRITEUPS],
        metrics=[pipeline.metrics_path(PROFILE, w) for w in pipeline.WRITEUPS],
        png=[p for w in pipeline.WRITEUPS for p in pipeline.figure_paths(PROFILE, w, "png")],
        scorecard=rules.scorecard.output.png,
        curves=curves_paths("png"),
        dashboards=list(DASHBOARDS.values()),
        text=[f"replications/{w}/{f}" for w in pipeline.WRITEUPS for f in ["README.md"]]
        + [f"replications/{w}/captions/{n}.rst" for w in pipeline.WRITEUPS
           for n in pipeline.figures(w)],
        code=code_inputs("shared.report"),
    output:
        f"{SCORECARD}/report.html",
    params:
        writeups=rules.scorecard.params.writeups,
        profile=PROFILE,
        robustness=lambda wildcards: (f"--robustness {ROBUSTNESS_JSON}"
                                      if Path(ROBUSTNESS_JSON).is_file() else ""),
        robustness_sha=content_hash(ROBUSTNESS_JSON),
        code_sha=code_hash("shared.report"),
    log:
        f"{LOGS}/report.log",
    conda:
        ENV
    resources:
        mem_mb=1000,
    shell:
        "python -m shared.report --profile {params.profile} {params.writeups} "
        "--scorecard-figure {input.scorecard} --curves {input.curves} "
        "--dashboards {input.dashboards} {params.robustness} "
        "--out {output} 2>&1 | tee {log}"


rule figures:
    """Collect every figure, the scorecard and the report into figures/ (the `figures/`
    target)."""
    input:
        png=[p for w in pipeline.WRITEUPS for p in pipeline.figure_paths(PROFILE, w, "png")],
        pdf=[p for w in pipeline.WRITEUPS for p in pipeline.figure_paths(PROFILE, w, "pdf")],
        scorecard=rules.scorecard.output,
        report=rules.report_html.output,
        curves=curves_paths("png") + curves_paths("pdf"),
        dashboards=list(DASHBOARDS.values()),
        code=code_inputs("shared.collect"),
    output:
        directory("figures"),
    params:
        profile=PROFILE,
        code_sha=code_hash("shared.collect"),
    log:
        f"{LOGS}/figures.log",
    conda:
        ENV
    resources:
        mem_mb=500,
    shell:
        "python -m shared.collect --profile {params.profile} --out {output} {input.png} "
        "{input.pdf} {input.scorecard} {input.report} {input.curves} {input.dashboards} "
        "2>&1 | tee {log}"


rule one_figure:
    """One figure on its own: figures/<write-up>/<name>.png (or .pdf)."""
    input:
        f"results/{PROFILE}/{{writeup}}/figures/{{name}}.{{ext}}",
    output:
        "figures/{writeup}/{name}.{ext}",
    wildcard_constraints:
        writeup="|".join(pipeline.WRITEUPS),
        ext="png|pdf",
    log:
        f"{LOGS}/one_figure/{{writeup}}/{{name}}.{{ext}}.log",
    conda:
        ENV
    resources:
        mem_mb=200,
    shell:
        "cp -v {input} {output} 2>&1 | tee {log}"
