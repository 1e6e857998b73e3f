# Config validation, offline mode and the names every rule file uses.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from inputspace.config import load_schema, validated
from inputspace.errors import ConfigError, InputspaceError

try:
    _checked = validated(config, load_schema(Path(workflow.basedir) / "schemas/config.schema.yaml"))
except ConfigError as error:
    sys.exit(f"inputspace: {error}")
config.clear()
config.update(_checked)

MODELS = sorted(config["models"])


wildcard_constraints:
    model="|".join(MODELS),
    experiment="|".join(config["experiments"]) or "(?!)",


def model_folder(wildcards):
    return f"results/models/{wildcards.model}"


ENV = "../envs/inputspace.yaml"
EXPERIMENTS = config["experiments"]


def workflow_path(path):
    """A config path, relative to the workflow folder unless absolute."""
    return str(Path(workflow.basedir) / path)


def experiment_models(kind):
    """(experiment, model) pairs of the experiments whose sequences are of `kind`."""
    return [
        (name, model)
        for name, experiment in EXPERIMENTS.items()
        if experiment["sequences"]["kind"] == kind
        for model in experiment["models"]
    ]


def _check_prompts():
    from inputspace.prompts import check_prompt, read_pairs

    for name, experiment in EXPERIMENTS.items():
        sequences = experiment["sequences"]
        where = f"experiments.{name}"
        if sequences["kind"] == "pairs":
            read_pairs(workflow_path(sequences["file"]))
        if sequences["kind"] == "prompt":
            check_prompt(sequences["prompt"], f"{where}.sequences.prompt")
        if sequences["kind"] == "random" and sequences["min_length"] > sequences["max_length"]:
            raise ConfigError(
                f"config error at {where}.sequences: min_length {sequences['min_length']} exceeds "
                f"max_length {sequences['max_length']}"
            )
        if "target" in experiment:
            check_prompt(experiment["target"]["prompt"], f"{where}.target.prompt")


try:
    _check_prompts()
except InputspaceError as error:
    sys.exit(f"inputspace: {error}")
