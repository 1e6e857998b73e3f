"""Config validation with one-line errors that name the key and what is allowed."""

import copy
import difflib
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from inputspace.errors import ConfigError


def load_schema(path: Path) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def validated(config: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with schema defaults filled in, or ConfigError for the first problem."""
    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(config))
    if error is not None:
        raise ConfigError(describe(error))
    filled = copy.deepcopy(config)
    _fill_defaults(filled, schema)
    _check_references(filled)
    return filled


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
        return f"config error at {where}: {error.instance!r} is not allowed; use one of {error.validator_value}"
    if error.validator == "type":
        return f"config error at {where}: {error.instance!r} is not of type {error.validator_value}"
    return f"config error at {where}: {error.message}"


def _fill_defaults(instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> None:
    root = root or schema
    if "$ref" in schema:
        schema = _resolve(schema["$ref"], root)
    if not isinstance(instance, dict):
        return
    for key, sub in schema.get("properties", {}).items():
        if isinstance(sub, dict) and "default" in sub and key not in instance:
            instance[key] = copy.deepcopy(sub["default"])
        if key in instance and isinstance(sub, dict):
            _fill_defaults(instance[key], sub, root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key, value in instance.items():
            if key not in schema.get("properties", {}):
                _fill_defaults(value, extra, root)


def _resolve(ref: str, root: dict[str, Any]) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _check_references(config: dict[str, Any]) -> None:
    defined = sorted(config["models"])
    for name, experiment in config["experiments"].items():
        for index, model in enumerate(experiment["models"]):
            if model not in defined:
                raise ConfigError(
                    f"config error at experiments.{name}.models[{index}]: model {model!r} is not "
                    f"defined; defined models: {', '.join(defined)}"
                )
