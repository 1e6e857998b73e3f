"""Config validation: one-line errors that say where, what, and what is allowed; defaults."""

import copy
from pathlib import Path

import pytest
import yaml

from inputspace.errors import ConfigError
from inputspace.workflow.config import check_experiment, checked, load_schema, validated

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "schemas/config.schema.yaml")


def base_config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def error_of(config: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validated(config, SCHEMA)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_config_error_in_a_job_is_one_line_and_exit_1(tmp_path):
    """Jobs that validate what they read stop with the error's line, like any other input."""
    import types

    from inputspace.provenance import history
    from inputspace.workflow import scripting

    def main(snakemake):
        validated({"models": {}}, SCHEMA)

    log = tmp_path / "job.log"
    job = types.SimpleNamespace(
        log=[str(log)], threads=1, rule="r", output=[], input=[], params={}, wildcards={}
    )
    with pytest.raises(SystemExit) as info:
        scripting.run(main, job)
    assert info.value.code == 1
    note, *lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert note.startswith(history.NOTE)  # where the job ran, first (inputspace.provenance.history)
    assert len(lines) == 1 and "config" in lines[0].lower()


def test_misspelt_key_names_location_key_suggestion_and_allowed_keys():
    config = base_config()
    config["models"]["smollm2"]["descripton"] = config["models"]["smollm2"].pop("description")
    message = error_of(config)
    assert "models.smollm2" in message
    assert "'descripton'" in message
    assert "did you mean 'description'" in message
    assert "allowed keys: description, source" in message


def test_misspelt_nested_key_suggests_the_right_one():
    config = base_config()
    config["vocab"] = {"chunk_sise": 10}
    message = error_of(config)
    assert message.startswith("config error at vocab:")
    assert "'chunk_sise'" in message
    assert "did you mean 'chunk_size'" in message
    assert message.endswith("allowed keys: chunk_size")


def test_wrong_type():
    config = base_config()
    config["vocab"] = {"chunk_size": "big"}
    message = error_of(config)
    assert "vocab.chunk_size" in message
    assert "'big'" in message
    assert "integer" in message


def test_negative_count():
    config = base_config()
    config["experiments"]["random_sentences"]["sequences"]["count"] = -1
    message = error_of(config)
    assert "experiments.random_sentences.sequences.count" in message
    assert "-1" in message
    assert "minimum" in message


def test_unknown_source_kind_lists_allowed_kinds():
    config = base_config()
    config["models"]["smollm2"]["source"]["kind"] = "ftp"
    message = error_of(config)
    assert "models.smollm2.source.kind" in message
    assert "'ftp'" in message
    for kind in ("package_gguf", "hub", "local", "random"):
        assert kind in message


def test_experiment_naming_undefined_model():
    config = base_config()
    config["models"]["other"] = {"source": {"kind": "random", "architecture": "llama"}}
    config["experiments"]["bark_neigh"]["models"] = ["smollm2", "gpt5"]
    message = error_of(config)
    assert "experiments.bark_neigh.models[1]" in message
    assert "'gpt5'" in message
    assert "defined models: other, smollm2" in message


def test_defaults_are_filled_without_mutating_the_input():
    config = base_config()
    del config["allow_downloads"]
    del config["experiments"]["bark_neigh"]["target"]
    original = copy.deepcopy(config)
    filled = validated(config, SCHEMA)
    assert config == original
    assert "allow_downloads" not in config and "vocab" not in config
    assert filled["allow_downloads"] is False
    assert filled["vocab"] == {"chunk_size": 8192}
    assert filled["geometry"] == {"distance_pairs": 1000, "neighbour_sample": 8192, "seed": 0}
    # Defaults inside $ref'd definitions are filled too.
    assert all(experiment["seed"] == 0 for experiment in filled["experiments"].values())
    assert "target" not in filled["experiments"]["bark_neigh"]


def test_given_values_win_over_defaults():
    config = base_config()
    config["vocab"] = {"chunk_size": 7}
    config["experiments"]["bark_neigh"]["seed"] = 5
    filled = validated(config, SCHEMA)
    assert filled["vocab"]["chunk_size"] == 7
    assert filled["experiments"]["bark_neigh"]["seed"] == 5
    assert filled["experiments"]["prompt_pairs"]["seed"] == 0


@pytest.mark.parametrize("path", ["config.yaml", "configs/paper.yaml", "configs/tiny.yaml"])
def test_shipped_configs_validate(path):
    config = yaml.safe_load((REPO / path).read_text())
    filled = validated(config, SCHEMA)
    assert set(filled["models"]) == set(config["models"])
    assert filled["vocab"]["chunk_size"] >= 1


@pytest.mark.parametrize("section", ["models", "experiments"])
def test_names_with_a_trailing_newline_are_rejected(section):
    config = base_config()
    if section == "models":
        config["models"]["tiny\n"] = {"source": {"kind": "random", "architecture": "llama"}}
    else:
        config["experiments"]["exp\n"] = {
            "models": ["smollm2"],
            "sequences": {"kind": "prompt", "prompt": "x [MASK]"},
        }
    error_of(config)


def test_defaults_inside_a_filled_default_and_a_chosen_branch_are_filled():
    config = base_config()
    experiment = config["experiments"]["random_sentences"]
    experiment.pop("optimize", None)
    experiment["landscape"] = {}
    filled = validated(config, SCHEMA)["experiments"]["random_sentences"]
    assert filled["optimize"]["checkpoint_every"] == 50 and filled["optimize"]["stop"] is None
    assert filled["landscape"]["solve_below"] == 0.001 and filled["watch_pieces"] == "first"
    experiment["optimize"] = {"stop": {"below": 0.01}}
    stop = validated(config, SCHEMA)["experiments"]["random_sentences"]["optimize"]["stop"]
    assert stop == {"below": 0.01, "patience": 1}


def test_schema_keeps_defaults_out_of_alternatives():
    """Defaults are filled while validating; inside oneOf/anyOf a branch that does not
    match would still leave its defaults behind, unless it is an object branch (the only
    one whose properties apply to an object)."""

    def walk(node, inside_alternative=False):
        if isinstance(node, dict):
            if inside_alternative and node.get("type") != "object":
                assert "default" not in node.get("properties", {}), node
            for key, value in node.items():
                walk(value, inside_alternative or key in ("oneOf", "anyOf"))
        elif isinstance(node, list):
            for value in node:
                walk(value, inside_alternative)

    walk(SCHEMA)


def checked_experiment(without: str | None = None, **changes) -> None:
    experiment = copy.deepcopy(validated(base_config(), SCHEMA)["experiments"]["random_sentences"])
    experiment.update(changes)
    experiment.pop(without, None)
    check_experiment("random_sentences", experiment, REPO)


def test_semantic_checks_name_the_key():
    with pytest.raises(
        ConfigError,
        match=r"experiments.random_sentences.sequences: min_length 9 exceeds max_length 4",
    ):
        checked_experiment(
            sequences={"kind": "random", "count": 2, "min_length": 9, "max_length": 4}
        )
    with pytest.raises(
        ConfigError, match=r"experiments.random_sentences: random sequences need a target"
    ):
        checked_experiment(without="target")
    with pytest.raises(ConfigError, match=r"landscape study needs random sequences"):
        checked_experiment(
            sequences={"kind": "prompt", "prompt": "A dog is a [MASK]."}, landscape={}
        )
    with pytest.raises(
        ConfigError, match=r"case_study: a case study needs sequences of kind prompt"
    ):
        checked_experiment(case_study={"word": "dog", "toward": "cat"})


def test_shipped_configs_pass_the_semantic_checks():
    for path in ("config.yaml", "configs/paper.yaml", "configs/tiny.yaml"):
        checked(yaml.safe_load((REPO / path).read_text()), SCHEMA, REPO)
