# Seed sweeps: the `robustness/` target. Seed 0 is this profile's ordinary DAG; seed k >= 1 is
# the DAG of the seed variant `<profile>-seed<k>` (results/<profile>-seed<k>/), built by a
# nested Snakemake run because every path and config of the DAG is fixed to one profile when
# the Snakefile is parsed. `shared.robustness` then scores every claim on every seed.
#
# Layout: results/<profile>/robustness/ keeps each profile's tables (robustness_<profile>.md,
# .json, and <write-up>/robustness_<profile>.md); robustness/ is a copy of the profile last
# built, like figures/.
#
# Defined for a base profile only: a seed variant's DAG is one seed of its base profile's sweep.

if PROFILE == BASE_PROFILE:
    ROBUST_SEEDS = [PROFILE] + [f"{PROFILE}-seed{k}" for k in range(1, RUN.robustness_seeds)]
    ROBUST_R = f"results/{PROFILE}/robustness"

    rule robustness_seed:
        """Seed k >= 1 of the sweep: this profile's DAG with every seed shifted by k, up to its
        scorecard (nested run; --nolock since this run holds the lock on its outputs)."""
        output:
            scorecard=pipeline.scorecard_path(f"{PROFILE}-seed{{k}}"),
            metrics=[pipeline.metrics_path(f"{PROFILE}-seed{{k}}", w) for w in pipeline.WRITEUPS],
        params:
            profile=PROFILE,
            overrides=RUN.overrides_args(),
        wildcard_constraints:
            k="[1-9][0-9]*",
        log:
            f"{LOGS}/robustness/seed{{k}}.log",
        # Every core (Snakemake scales a larger claim down to --cores): the nested run schedules
        # its own jobs, so nothing else runs beside it. Not `workflow.cores`, which --report and
        # other core-less invocations cannot evaluate.
        threads: 1024
        conda:
            ENV
        shell:
            "snakemake --nolock --cores {threads} {output.scorecard} {output.metrics} "
            "--config profile={params.profile} seed={wildcards.k} {params.overrides} > {log} 2>&1"

    rule robustness_table:
        """Every claim of every write-up on every seed: value, margin, k/N, reproduced or not."""
        input:
            claims=[pipeline.claims_path(w) for w in pipeline.WRITEUPS],
            scorecards=[pipeline.scorecard_path(s) for s in ROBUST_SEEDS],
            metrics=[pipeline.metrics_path(s, w) for s in ROBUST_SEEDS for w in pipeline.WRITEUPS],
        output:
            directory(ROBUST_R),
        params:
            profile=PROFILE,
            seeds=" ".join(ROBUST_SEEDS),
            writeups=" ".join(
                f"--writeup {w} {pipeline.claims_path(w)} "
                + " ".join(pipeline.metrics_path(s, w) for s in ROBUST_SEEDS)
                for w in pipeline.WRITEUPS
            ),
            # A function: evaluated for the job only (--report has no core count).
            cores=lambda wildcards: workflow.cores,
        log:
            f"{LOGS}/robustness/table.log",
        conda:
            ENV
        resources:
            mem_mb=1000,
        shell:
            "python -m shared.robustness --profile {params.profile} --seeds {params.seeds} "
            "{params.writeups} --out {output} --cores {params.cores} 2>&1 | tee {log}"

    rule robustness:
        """The `robustness/` target: this profile's tables, copied like figures/."""
        input:
            ROBUST_R,
        output:
            directory("robustness"),
        log:
            f"{LOGS}/robustness/collect.log",
        conda:
            ENV
        shell:
            "rm -rf {output} && cp -rv {input} {output} > {log} 2>&1"
