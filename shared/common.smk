# Helpers shared by every write-up's rules file (functions only; rules live in rules.smk files
# and in shared/zoo.smk and shared/robustness.smk).

import json
from pathlib import Path
from types import SimpleNamespace

from shared import code_deps, config_access
from shared.config import to_dict
from shared.io import sha256_file


def content_hash(path):
    """A param: the sha256 of an optional file that is not an input ('' while it is absent),
    so the rule reruns when the file appears or changes."""
    def sha(wildcards):
        return sha256_file(Path(path)) if Path(path).is_file() else ""
    return sha


def code_inputs(module):
    """A rule's `code` input: the project's files that `module` (the script its shell runs)
    imports, directly or not (shared.code_deps)."""
    return code_deps.closure(module)


def code_hash(module):
    """A rule's `code_sha` param: the sha256 of the contents of `code_inputs(module)`. Editing
    one of those files reruns the rule through the `params` trigger (the workflow profile
    leaves out `mtime`, so that outputs DVC restores are not recomputed)."""
    return code_deps.digest(module)


def config_params(*sections):
    """A rule's params for a job that reads these config sections ("writeup.section"):
    `config`, their values as the Snakefile loaded them (an edit, in the YAML or by --config,
    reruns the rule), and `mi_config`, the declaration its shell passes as MI_CONFIG (the job
    cannot read other sections: shared.config_access)."""
    values = {}
    for key in sections:
        writeup, _, section = key.partition(".")
        if writeup not in pipeline.LOADED or not hasattr(pipeline.LOADED[writeup], section):
            pipeline.fail(ValueError(f"config_params: no config section '{key}'"))
        values[key] = to_dict(getattr(pipeline.LOADED[writeup], section))
    # Only the overrides of the sections it reads: any other would rerun it for nothing (the
    # job cannot read those sections anyway).
    overrides = {}
    for w, override in RUN.overrides.items():
        kept = {s: v for s, v in override.items() if f"{w}.{s}" in sections}
        if kept:
            overrides[w] = kept
    return {"config": json.dumps(values, sort_keys=True),
            "mi_config": config_access.encode(sorted(sections), overrides)}


# Write-up -> its feature dashboard (shared.dashboard), for the report and figures/.
DASHBOARDS = {}


def dashboard_rule_params(writeup, settings):
    """Params of a write-up's dashboard rule: its settings as JSON (an edit reruns it)."""
    return {"settings": json.dumps(to_dict(settings), sort_keys=True),
            "code_sha": code_hash("shared.dashboard")}


def figure_output(writeup, name):
    """A figure's PNG output under results/, registered for the report with its caption file."""
    return report(
        f"results/{PROFILE}/{writeup}/figures/{name}.png",
        # Absolute: a relative caption resolves against the calling rules file, and a write-up
        # may split its rules over several files (replications/<writeup>/rules/*.smk).
        caption=str(Path(workflow.basedir) / "replications" / writeup / "captions" / f"{name}.rst"),
        category=writeup,
    )



def model_arg(name):
    """A rule's `--model` argument: the folder of the stand-in its `model` input lists, or, when
    that input is empty (paper profile), the published model `name`. A function of the input
    rather than a fixed path, so rules run where the files are staged."""
    return lambda wildcards, input: str(Path(input.model[0]).parent) if input.model else name

# ----------------------------------------------------------------------- the model zoo
# Declaring and finding stand-in models and SAEs; shared/zoo.smk holds the rules that build
# them.

ZOO = {}  # model name -> what the rules need (owner folder, settings as JSON, extra documents)
ZOO_SECTIONS = ("corpus", "tokenizer", "lm")


def zoo_stand_in(name, owner, cfg, extra_docs=(), threads=1):
    """Declare the stand-in `name`, trained from `cfg.corpus`, `cfg.tokenizer` and `cfg.lm`
    (the owner write-up's config) with `extra_docs` (JSON-lines files) added to its training
    text and `threads` torch threads for its training (zoo_lm); return its files (see
    `zoo_model`)."""
    if name in ZOO or any(m["owner"] == owner for m in ZOO.values()):
        pipeline.fail(ValueError(f"model zoo: '{name}' or a second stand-in of {owner} declared"))
    if name not in pipeline.manifest(owner).models:
        pipeline.fail(ValueError(f"model zoo: replications/{owner}/writeup.yaml does not list "
                                 f"'{name}' under models"))
    ZOO[name] = {
        "owner": owner,
        "extra_docs": list(extra_docs),
        "threads": int(threads),
        "config": {k: json.dumps(to_dict(getattr(cfg, k)), sort_keys=True) for k in ZOO_SECTIONS},
    }
    return zoo_model(name)


def zoo_model(name):
    """The files of the stand-in `name`: `dir` (what scripts load), `inputs` (what a rule that
    loads it depends on), `tokens`, `tokenizer`, `history`, the corpus splits and loss curve."""
    if name not in ZOO:
        pipeline.fail(ValueError(f"model zoo: no stand-in '{name}' (declared: {sorted(ZOO)})"))
    root = f"results/{PROFILE}/{ZOO[name]['owner']}"
    lm = f"{root}/lm"
    return SimpleNamespace(
        name=name, dir=lm, inputs=[f"{lm}/model.safetensors", f"{lm}/lm_config.json"],
        history=f"{lm}/history.json", loss=f"{lm}/lm_loss.png", loss_pdf=f"{lm}/lm_loss.pdf",
        tokens=f"{root}/tokenizer/tokens.safetensors", tokenizer=f"{root}/tokenizer/tokenizer.json",
        corpus_train=f"{root}/corpus/train.txt", corpus_val=f"{root}/corpus/val.txt",
    )


def _zoo_entry(wildcards):
    return next(m for m in ZOO.values() if m["owner"] == wildcards.owner)


def _zoo_config(section):
    return lambda wildcards: _zoo_entry(wildcards)["config"][section]


# SAE name -> what the zoo_sae rule needs (owner folder, settings as JSON, model, tokens).
ZOO_SAES = {}
ZOO_SAE_FILES = {"weights": "sae_weights.safetensors", "cfg": "cfg.json",
                 "sparsity": "sparsity.safetensors", "frequency": "frequency.safetensors",
                 "history": "history.json", "metrics": "eval.json"}


def zoo_sae(name, owner, cfg, model, tokens=None, mem_mb=3000, gpu=0):
    """Declare the SAE `name` of write-up `owner`, from its config's `cfg.zoo_sae()` (a
    shared.sae_zoo.ZooSAEConfig: its `sae` and `sae_run` sections, the hook, the rows and the
    evaluation's thresholds). `model` is a stand-in's declaration (`zoo_stand_in`'s return) or
    a published model's name; `tokens` the tokens file it is trained and evaluated on (by
    default the stand-in's). `mem_mb` and `gpu` are the rule's resources. Return its files
    (see `zoo_sae_files`). One SAE per owner: its folder is results/<profile>/<owner>/sae/."""
    if name in ZOO_SAES or any(s["owner"] == owner for s in ZOO_SAES.values()):
        pipeline.fail(ValueError(f"model zoo: SAE '{name}' or a second SAE of {owner} declared"))
    if name not in pipeline.manifest(owner).models:
        pipeline.fail(ValueError(f"model zoo: replications/{owner}/writeup.yaml does not list "
                                 f"'{name}' under models"))
    stand_in = isinstance(model, SimpleNamespace)
    if tokens is None and not stand_in:
        pipeline.fail(ValueError(f"model zoo: SAE '{name}' reads the published model "
                                 f"'{model}': give its tokens file"))
    ZOO_SAES[name] = {
        "owner": owner,
        "model": model.dir if stand_in else str(model),
        "model_inputs": list(model.inputs) if stand_in else [],
        "tokens": tokens if tokens is not None else model.tokens,
        "config": json.dumps(to_dict(cfg.zoo_sae()), sort_keys=True),
        "mem_mb": mem_mb,
        "gpu": gpu,
    }
    return zoo_sae_files(name)


def zoo_sae_files(name):
    """The files of the zoo SAE `name`: `dir` (what scripts load with shared.sae_io.load_sae),
    `inputs` (every file of the folder: what a rule that reads it depends on), and each file
    by its key in ZOO_SAE_FILES (`metrics` is eval.json)."""
    if name not in ZOO_SAES:
        pipeline.fail(ValueError(f"model zoo: no SAE '{name}' (declared: {sorted(ZOO_SAES)})"))
    folder = f"results/{PROFILE}/{ZOO_SAES[name]['owner']}/sae"
    files = {key: f"{folder}/{file}" for key, file in ZOO_SAE_FILES.items()}
    return SimpleNamespace(name=name, dir=folder, inputs=list(files.values()), **files)


def _zoo_sae_entry(wildcards):
    return next(s for s in ZOO_SAES.values() if s["owner"] == wildcards.owner)


def _zoo_sae(key):
    return lambda wildcards: _zoo_sae_entry(wildcards)[key]


# ------------------------------------------------------------------ training curves

def training_runs(writeup):
    """Run name -> history (`path[#key]`) of a write-up's training runs in this profile: the
    manifest's `training` and, where it trains one, its stand-in LM of the model zoo."""
    runs = {m: zoo_model(m).history for m in pipeline.manifest(writeup).models
            if m in ZOO and ZOO[m]["owner"] == writeup}
    runs = {"lm": v for v in runs.values()}
    runs.update({name: f"{pipeline.results_dir(PROFILE, writeup)}/{spec}"
                 for name, spec in pipeline.manifest(writeup).training.items()})
    return runs


def curves_paths(ext):
    """The training-curves figures of this profile (shared.curves), one per write-up that
    trains something."""
    return [f"results/{PROFILE}/{w}/curves/training_curves.{ext}" for w in CURVES_WRITEUPS]
