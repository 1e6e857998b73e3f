# Config validation, offline mode and the names every rule file uses.
import atexit
import os
import sys
from pathlib import Path

from snakemake import __version__ as SNAKEMAKE_VERSION
from snakemake.io import apply_wildcards, get_flag_value, is_flagged
from snakemake.settings.types import DeploymentMethod

# Snakemake itself needs the package installed (setup.sh does it); every job imports it
# from this workflow's src/ through PYTHONPATH, which jobs inherit (scripts, conda envs,
# cluster jobs alike; a conda env is made from a copy of envs/inputspace.yaml, so it
# cannot pip-install a path relative to the workflow).
os.environ.update(  # set, not read: the lint's envvars advice is for variables a user must give
    PYTHONPATH=os.pathsep.join(
        p for p in (str(Path(workflow.basedir) / "src"), os.environ.get("PYTHONPATH")) if p
    )
)
PACKAGE = Path(workflow.basedir) / "src/inputspace"  # whose modules the code digests read
try:
    from inputspace.provenance import code_digest
    from inputspace.workflow import diagnoses
    from inputspace.model import source_content
    from inputspace.workflow import recovery
    from inputspace.provenance import snakemake_internals
    from inputspace.analysis.run_measures import replicates_for
    from inputspace.model.manifest import damage
    from inputspace.provenance.record import FIGURE_SUFFIXES
    from inputspace.workflow.config import checked, load_schema, without_notes
    from inputspace.errors import InputspaceError
    from inputspace.workflow.table_names import (
        LANDSCAPE_FILES,
        RUN_FILES,
        SUMMARY_LANDSCAPE_TABLES,
        table_key,
    )
except ModuleNotFoundError as missing:
    sys.exit(
        f"inputspace: cannot import {missing.name!r}; run ./setup.sh (or pip install -e . in {workflow.basedir})"
    )

try:
    _checked = checked(
        config,
        load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml"),
        Path(workflow.basedir),
    )
except InputspaceError as error:
    sys.exit(f"inputspace: {error}")
config.clear()
config.update(_checked)

# jobs run in their rules' conda envs (--sdm conda), not in Snakemake's environment
JOBS_IN_CONDA = DeploymentMethod.CONDA in workflow.deployment_settings.deployment_method
DEPLOYMENT = sorted(
    method.name.lower() for method in workflow.deployment_settings.deployment_method
)
STATE = Path(".snakemake")
DIGESTS = source_content.DigestCache(STATE / "inputspace-digests.json")
ENVIRONMENT = code_digest.Environment(STATE / "inputspace-environment.json")
CODE_MEMO = code_digest.remember_in(STATE / "inputspace-code.json")


def is_real_run():
    """Whether this process runs the jobs: not a dry run, --touch, --nolock, a summary or
    listing (no executor), nor a job's own process. Only such a run locks the working
    directory, and only it may clear a killed run's locks or cancel its jobs."""
    settings = workflow.execution_settings
    return bool(
        workflow.is_main_process
        and workflow.executor_plugin is not None
        and not workflow.dryrun
        and not workflow.touch
        and settings
        and settings.lock
    )


THIS_RUN = []  # this process's run, once it has noted itself (a real run only)


def after_killed_runs(wildcards):
    """prepare_model's input function (every chain of jobs starts with it). Snakemake
    evaluates input functions after it knows whether this is a real run and before it
    locks the working directory, and offers no other hook there: so this is where a real
    run notes itself and clears what runs killed outright left (their SLURM jobs, their
    locks), once; see inputspace.workflow.recovery."""
    if THIS_RUN or not is_real_run():
        return []
    try:
        run, said = recovery.start(STATE)
    except InputspaceError as error:
        sys.exit(f"inputspace: {error}")
    THIS_RUN.append(run)
    state = STATE.resolve()  # Snakemake is back in the folder it started from at exit
    atexit.register(lambda: recovery.forget(state, THIS_RUN[0]))
    for line in said:
        print(f"inputspace: {line}", file=sys.stderr)
    return []


MODELS = sorted(config["models"])


wildcard_constraints:
    model="|".join(MODELS),
    experiment="|".join(config["experiments"]) or "(?!)",


MODEL_FOLDER = "results/models/{model}"


def model_folder(wildcards):
    """The prepared folder of the wildcards' model; a run (dry or not) stops with one line
    if its files are no longer what prepare_model wrote, unless it is being made again.
    (Snakemake does not see a file changed inside a directory output; the audit, which
    plans with --detailed-summary, reports it instead.)"""
    folder = MODEL_FOLDER.format(model=wildcards.model)
    if workflow.executor_plugin is not None and not is_forced(folder):
        damaged = damage(folder, DIGESTS.sha256)
        if damaged:
            sys.exit(f"inputspace: {damaged}")
    return folder


def is_forced(output):
    settings = workflow.dag_settings
    forced = settings.forcerun or set()
    targeted = settings.forcetargets and output in (settings.targets or ())
    return settings.forceall or targeted or output in forced or "prepare_model" in forced


ENV = "../envs/inputspace.yaml"
EXPERIMENTS = config["experiments"]


def run_files(experiment="{experiment}", model="{model}"):
    """An optimisation run's files (as patterns unless both names are given)."""
    return {key: f"results/{model}/runs/{experiment}/{name}" for key, name in RUN_FILES.items()}


def samples_input(wildcards):
    """Random-sentence experiments start from the sampled batch; others from prompts."""
    if EXPERIMENTS[wildcards.experiment]["sequences"]["kind"] == "random":
        return f"results/{wildcards.model}/samples/{wildcards.experiment}.safetensors"
    return []


def prompt_inputs(wildcards):
    sequences = EXPERIMENTS[wildcards.experiment]["sequences"]
    return workflow_path(sequences["file"]) if sequences["kind"] == "pairs" else []


def workflow_path(path):
    """A config path (relative to the workflow folder unless absolute) as Snakemake should
    see it: relative to the working directory when it lies inside it, so that a checkout
    moved with its results names the same file (Snakemake reruns a job whose set of input
    paths changed); otherwise absolute, so that moving the working directory does not
    change it."""
    full = Path(workflow.basedir, path).resolve()
    try:
        return str(full.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(full)


def experiment_models(kind=None):
    """(experiment, model) pairs, of the experiments whose sequences are of `kind` if given."""
    return [
        (name, model)
        for name, experiment in EXPERIMENTS.items()
        if kind is None or experiment["sequences"]["kind"] == kind
        for model in experiment["models"]
    ]


def optimisation_spec(experiment):
    """What an experiment's optimisation reads: not its description, nor the case-study
    and landscape blocks, nor its replicates (the sampled batch, an input, holds what they
    change): changing those must not redo the run."""
    return without_notes(EXPERIMENTS[experiment], "case_study", "landscape", "replicates")


def replicates_of(wildcards):
    """Params entry: how many replicates the wildcards' experiment's sequences are split
    into (run_measures.replicates_for)."""
    return replicates_for(EXPERIMENTS[wildcards.experiment])


def experiment_keys(*keys):
    """Params entry: only these keys of the wildcards' experiment, so that a rule reruns
    when what it reads changes and for nothing else (a description, another block)."""
    return lambda wildcards: {
        k: EXPERIMENTS[wildcards.experiment][k]
        for k in keys
        if k in EXPERIMENTS[wildcards.experiment]
    }


def landscapes():
    """(experiment, model) pairs of the experiments with a landscape study."""
    return [
        (name, model)
        for name, model in experiment_models("random")
        if "landscape" in EXPERIMENTS[name]
    ]


def case_studies():
    """(experiment, model) pairs of the experiments with a case study."""
    return [
        (name, model)
        for name, model in experiment_models("prompt")
        if "case_study" in EXPERIMENTS[name]
    ]


def experiment_models_of(wildcards):
    return EXPERIMENTS[wildcards.experiment]["models"]


def per_model(pattern):
    """Input function: `pattern` (with {model}, {experiment}) for each model of the experiment."""
    return lambda wildcards: [
        pattern.format(model=model, experiment=wildcards.experiment)
        for model in experiment_models_of(wildcards)
    ]


PRINT_FORMATS = [kind for kind in config["figures"]["formats"] if kind != "png"]


def printed(key, figure):
    """Named outputs of a static figure: `key`, its PNG (as given: flagged for the report),
    and `{key}_pdf`, `{key}_svg`, its print copies, as the config's formats ask."""
    stem = str(figure).removesuffix(".png")
    return {key: figure, **{f"{key}_{kind}": f"{stem}.{kind}" for kind in PRINT_FORMATS}}


def figure_of(name, caption):
    return report(
        f"results/figures/{{experiment}}/{name}",
        caption=f"../report/{caption}.rst",
        category="{experiment}",
        subcategory="models side by side",
    )


def every_experiment(pattern):
    return [pattern.format(experiment=name) for name in EXPERIMENTS]


def landscape_file(name):
    return f"results/figures/{{experiment}}/{{model}}_{name}"


def landscape_tables(*names):
    """The landscape's tables by output name: those named, or all of them."""
    return {name: landscape_file(LANDSCAPE_FILES[name]) for name in names or LANDSCAPE_FILES}


def landscape_figure(name, caption):
    return report(
        landscape_file(name),
        caption=f"../report/{caption}.rst",
        category="{experiment}",
        subcategory="{model}",
    )


def figure_groups():
    """Which figure rules are asked for which wildcard values, in the order the report
    lists them: each request of a group, then each rule of the group."""
    every = [{"experiment": name} for name in EXPERIMENTS]

    def pairs(found):
        return [{"experiment": e, "model": m} for e, m in found]

    return [
        (["ellipse_figure"], [{"model": model} for model in MODELS]),
        (["sample_norms_figure"], pairs(experiment_models("random"))),
        (["gradient_figure", "case_study_path"], pairs(case_studies())),
        (["convergence_figures", "displacement_figures", "travel_density", "topk_figures"], every),
        (["landscape_figures"], pairs(landscapes())),
    ]


def figures_of(rule_name):
    """A rule's figures: its outputs flagged for the report that are pictures (PNG, GIF;
    the print copies come with them), as the rule itself names them."""
    outputs = getattr(rules, rule_name).rule.output
    return [f for f in outputs if is_flagged(f, "report") and f.endswith((".png", ".gif"))]


def all_figures():
    """Every figure the config's rule all builds (each carries its provenance)."""
    return [
        apply_wildcards(figure, wildcards)
        for names, requests in figure_groups()
        for wildcards in requests
        for name in names
        for figure in figures_of(name)
    ]


def output_of(rule_name, key, **wildcards):
    """A rule's named output for these wildcard values, as the rule itself names it."""
    return apply_wildcards(getattr(getattr(rules, rule_name).rule.output, key), wildcards)


def summary_inputs(wildcards):
    """Every table the summary reads, named by what it is and whose (table_names.table_key), at
    the path the rule that writes it names."""
    inputs = {}
    for model in MODELS:
        inputs[table_key("model", model=model)] = MODEL_FOLDER.format(model=model)
        inputs[table_key("pairs", model=model)] = output_of("vocab_distances", "pairs", model=model)
        inputs[table_key("vocab", model=model)] = output_of("extract_vocab", "table", model=model)
    for experiment in EXPERIMENTS:
        for table, (rule_name, key) in EXPERIMENT_TABLES.items():
            inputs[table_key(table, experiment)] = output_of(rule_name, key, experiment=experiment)
    for experiment, model in experiment_models():  # whose metadata holds the lr each run got
        path = output_of("optimize", "steps", experiment=experiment, model=model)
        inputs[table_key("run", experiment, model)] = path
    for experiment, model in case_studies():
        path = output_of("case_study_path", "table", experiment=experiment, model=model)
        inputs[table_key("path", experiment, model)] = path
    for experiment, model in landscapes():
        for table in SUMMARY_LANDSCAPE_TABLES:
            path = output_of("landscape", table, experiment=experiment, model=model)
            inputs[table_key(table, experiment, model)] = path
    return inputs


# The summary's table -> (the rule that writes it, that rule's output name).
EXPERIMENT_TABLES = {
    "convergence": ("convergence_figures", "convergence"),
    "curves": ("convergence_figures", "curves"),
    "displacement": ("displacement_figures", "stats"),
    "counts": ("token_tables", "counts"),
}


# ------------------------------------------------------------------ the crate (snakemake crate)


def figure_files():
    """Every figure file of this config (PNG, GIF and their print copies), each with the
    caption file (relative to the workflow folder) of the figure it shows: a print copy
    shows its PNG."""
    found = {}
    for names, requests in figure_groups():
        for name in names:
            outputs = getattr(rules, name).rule.output
            captions = {str(f): caption_of(f) for f in figures_of(name)}
            for f in (f for f in outputs if f.endswith(FIGURE_SUFFIXES)):
                caption = captions.get(str(f)) or captions.get(str(f).rsplit(".", 1)[0] + ".png")
                for wildcards in requests:
                    found[apply_wildcards(f, wildcards)] = caption
    return found


def caption_of(figure):
    caption = get_flag_value(figure, "report").caption
    path = Path(caption.get_path_or_uri(secret_free=True)).resolve()
    return path.relative_to(Path(workflow.basedir).resolve()).as_posix()


def crate_selection(everything):
    """What the crate describes: `everything` (what rule all makes), or the figures
    crate_figures names. Called once rule all is parsed, so that an entry naming no
    figure stops any run at parse time, with one line."""
    if not config["crate_figures"]:
        return list(everything)
    # imported here: it loads rocrate, which only the crate needs
    from inputspace.provenance.crate import chosen

    try:
        return chosen(config["crate_figures"], figure_files())
    except InputspaceError as error:
        sys.exit(f"inputspace: {error}")


CRATE_TARGETS = []  # crate_selection's answer, set at the end of the Snakefile


def crate_targets(wildcards):
    return CRATE_TARGETS


def rule_descriptions():
    """Each rule's docstring, script and rule file (relative to the workflow folder)."""
    base = Path(workflow.basedir).resolve()

    def relative(path):
        full = Path(path).resolve()
        return full.relative_to(base).as_posix() if full.is_relative_to(base) else str(full)

    described = {}
    for declared in workflow.rules:
        script = declared.script and declared.basedir.join(declared.script)
        described[declared.name] = {
            "doc": declared.docstring,
            "file": relative(declared.snakefile),
            "script": script and relative(script.get_path_or_uri(secret_free=True)),
        }
    return described
