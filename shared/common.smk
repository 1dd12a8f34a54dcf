# Helpers shared by every write-up's rules file (functions only; rules live in rules.smk files).


def figure_output(writeup, name):
    """A figure's PNG output under results/, registered for the report with its caption file."""
    return report(
        f"results/{PROFILE}/{writeup}/figures/{name}.png",
        # Absolute: a relative caption resolves against the calling rules file, and a write-up
        # may split its rules over several files (replications/<writeup>/rules/*.smk).
        caption=str(Path(workflow.basedir) / "replications" / writeup / "captions" / f"{name}.rst"),
        category=writeup,
    )
