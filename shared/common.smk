# Helpers shared by every write-up's rules file (functions only; rules live in rules.smk files).


def figure_output(writeup, name):
    """A figure's PNG output under results/, registered for the report with its caption file."""
    return report(
        f"results/{PROFILE}/{writeup}/figures/{name}.png",
        # Relative to the rules file that calls this: replications/<writeup>/rules.smk.
        caption=f"captions/{name}.rst",
        category=writeup,
    )
