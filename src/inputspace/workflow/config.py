"""Config validation with one-line errors that name the key and what is allowed."""

import copy
import difflib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from inputspace.errors import ConfigError, InputspaceError, PromptError
from inputspace.model.prompts import (
    PLACEHOLDER,
    check_prompt,
    prompt_pairs,
    read_pairs,
    word_span,
)


def load_schema(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def validated(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with schema defaults filled in, or ConfigError for the first problem."""
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft202012Validator(schema).iter_errors(config)
    )
    if error is not None:
        raise ConfigError(describe(error))
    _check_one_step_size(config)
    filled = copy.deepcopy(config)
    _FillingDefaults(schema).validate(filled)
    _check_references(filled)
    for experiment in filled["experiments"].values():
        if "lr_relative" in experiment["optimize"]:
            del experiment["optimize"]["lr"]  # the default filled in; the relative one is given
    return filled


def checked(config: dict[str, Any], schema: dict[str, Any], base: Path) -> dict[str, Any]:
    """`validated`, then the checks the schema cannot express: prompts (and the pairs
    files, relative to `base`), case studies, and what each kind of experiment needs."""
    filled = validated(config, schema)
    for name, experiment in filled["experiments"].items():
        check_experiment(name, experiment, base)
    return filled


def without_notes(experiment: dict[str, Any], *blocks: str) -> dict[str, Any]:
    """`experiment` without its description (a note for readers of the config, read by no
    rule) and without `blocks`: what a rule or a figure that ignores them depends on."""
    return {k: v for k, v in experiment.items() if k not in ("description", *blocks)}


def _set_defaults(
    validator: Any, properties: dict[str, Any], instance: Any, schema: dict[str, Any]
) -> Any:
    """jsonschema's documented recipe: fill a missing property from its default before
    validating it (so nested defaults inside a filled-in default are filled too)."""
    if isinstance(instance, dict):
        for key, sub in properties.items():
            if isinstance(sub, dict) and "default" in sub:
                instance.setdefault(key, copy.deepcopy(sub["default"]))
    yield from jsonschema.Draft202012Validator.VALIDATORS["properties"](
        validator, properties, instance, schema
    )


# Branches of oneOf/anyOf would fill defaults of branches that do not match, so the
# schema keeps defaults out of them (tests/test_config.py checks this).
_FillingDefaults = jsonschema.validators.extend(
    jsonschema.Draft202012Validator, {"properties": _set_defaults}
)


def _location(path: Any) -> str:
    parts = []
    for part in path:
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    return "".join(parts).lstrip(".") or "<top level>"


def describe(error: jsonschema.ValidationError) -> str:
    """One line: where, what is wrong, what is allowed."""
    where = _location(error.absolute_path)
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        allowed = sorted(error.schema.get("properties", {}).keys())
        unknown = sorted(set(error.instance) - set(allowed))
        hint = ""
        close = difflib.get_close_matches(unknown[0], allowed, n=1) if unknown else []
        if close:
            hint = f" (did you mean {close[0]!r}?)"
        return (
            f"config error at {where}: unknown key {unknown[0]!r}{hint}; "
            f"allowed keys: {', '.join(allowed)}"
        )
    if error.validator == "enum":
        return (
            f"config error at {where}: {error.instance!r} is not allowed; "
            f"use one of {error.validator_value}"
        )
    if error.validator == "contains" and "const" in error.validator_value:
        return (
            f"config error at {where}: {error.instance!r} lacks "
            f"{error.validator_value['const']!r}, which it must list"
        )
    if error.validator == "type":
        return f"config error at {where}: {error.instance!r} is not of type {error.validator_value}"
    return f"config error at {where}: {error.message}"


def _check_one_step_size(config: dict[str, Any]) -> None:
    """An experiment's step size is given once: absolute (lr) or relative (lr_relative)."""
    for name, experiment in config["experiments"].items():
        if {"lr", "lr_relative"} <= set(experiment.get("optimize", {})):
            raise ConfigError(
                f"config error at experiments.{name}.optimize: both lr and lr_relative are "
                "given; keep one (lr: the step in embedding units; lr_relative: the step as a "
                "fraction of the model's median token norm)"
            )


def _check_references(config: dict[str, Any]) -> None:
    defined = sorted(config["models"])
    for name, experiment in config["experiments"].items():
        for index, model in enumerate(experiment["models"]):
            if model not in defined:
                raise ConfigError(
                    f"config error at experiments.{name}.models[{index}]: model {model!r} is not "
                    f"defined; defined models: {', '.join(defined)}"
                )


def check_experiment(name: str, experiment: dict[str, Any], base: Path) -> None:
    """ConfigError (or PromptError) for the first thing `experiment` needs and lacks."""
    where = f"experiments.{name}"
    sequences = experiment["sequences"]
    if sequences["kind"] == "pairs":
        read_pairs(Path(base) / sequences["file"])
    if sequences["kind"] == "prompt":
        _check_prompts(sequences["prompt"], f"{where}.sequences.prompt")
    if sequences["kind"] == "random" and sequences["min_length"] > sequences["max_length"]:
        raise ConfigError(
            f"config error at {where}.sequences: min_length {sequences['min_length']} exceeds "
            f"max_length {sequences['max_length']}"
        )
    if "target" in experiment:
        _check_targets(experiment, where)
    elif sequences["kind"] != "pairs":
        raise ConfigError(
            f"config error at {where}: {sequences['kind']} sequences need a target "
            "(target: {prompt: ...})"
        )
    if "case_study" in experiment:
        _check_case_study(experiment, where)
    if "landscape" in experiment and sequences["kind"] != "random":
        raise ConfigError(
            f"config error at {where}.landscape: the landscape study needs random sequences "
            "(sequences: {kind: random, ...}) and a target"
        )


def _check_prompts(prompts: str | list[str], where: str) -> None:
    if isinstance(prompts, str):
        check_prompt(prompts, where)
        return
    for index, prompt in enumerate(prompts):
        check_prompt(prompt, f"{where}[{index}]")


def _check_targets(experiment: dict[str, Any], where: str) -> None:
    """One target prompt, or (for a single-prompt experiment with rewordings) one per
    source prompt."""
    targets = experiment["target"]["prompt"]
    _check_prompts(targets, f"{where}.target.prompt")
    if isinstance(targets, str):
        return
    if experiment["sequences"]["kind"] != "prompt":
        raise ConfigError(
            f"config error at {where}.target.prompt: a list of targets needs sequences of kind "
            "prompt (one target per source prompt); give a single target prompt"
        )
    try:
        prompt_pairs(experiment)
    except PromptError as error:
        raise ConfigError(f"config error at {where}.target.prompt: {error}") from None


def _check_case_study(experiment: dict[str, Any], where: str) -> None:
    """A case study follows a word of one source prompt toward a word of its target."""
    if experiment["sequences"]["kind"] != "prompt" or "target" not in experiment:
        raise ConfigError(
            f"config error at {where}.case_study: a case study needs sequences of kind prompt "
            "and a target prompt"
        )
    if not experiment["optimize"]["save_logged_embeddings"]:
        raise ConfigError(
            f"config error at {where}.optimize: a case study draws its path from the logged "
            "embeddings; set save_logged_embeddings: true"
        )
    study = experiment["case_study"]
    for key, prompt in (
        (key, prompt)
        for pair in prompt_pairs(experiment)
        for key, prompt in zip(("word", "toward"), pair)
    ):
        try:
            word_span(prompt.split(PLACEHOLDER)[0], study[key])
        except InputspaceError:
            raise ConfigError(
                f"config error at {where}.case_study.{key}: {study[key]!r} is not a whole word "
                f"before {PLACEHOLDER} in {prompt!r} (a causal LM reads only that part); "
                "fix one of them"
            ) from None
