"""Turn a configured model source into a prepared folder: safetensors weights,
tokenizer, and a manifest.json that every later stage reads.

Source kinds (the `kind` key of a model's `source` in config):
  package_gguf  a GGUF file shipped inside an installed Python package
  hub           a Hugging Face hub id at a revision (offline unless downloads are allowed)
  local         a Hugging Face model folder on disk
  random        a seeded random-weight model of a real architecture (for tests)
"""

import importlib.metadata
import json
import os
import shutil
from pathlib import Path
from typing import Any

import huggingface_hub
import torch
import transformers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForMaskedLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    MODEL_FOR_MASKED_LM_MAPPING_NAMES,
)

from inputspace.errors import (
    DamagedFile,
    InputspaceError,
    ModelUnavailable,
    WriteFailed,
    first_line,
)
from inputspace.hashing import file_digests, sha256_file
from inputspace.model import random_model
from inputspace.model.manifest import MANIFEST, damage
from inputspace.model.source_content import (
    cached_commit,
    content_digest,
    local_files,
    package_folder,
)

SOURCE_KINDS = ("package_gguf", "hub", "local", "random")

Loaded = tuple[PreTrainedModel, PreTrainedTokenizerBase, dict[str, Any]]


def model_kind(config: PretrainedConfig) -> str:
    """'masked' or 'causal', from the architectures a config declares: a class transformers
    maps as a masked LM (BertForMaskedLM, ...) or as a causal LM (LlamaForCausalLM,
    GPT2LMHeadModel, ...)."""
    for architecture in config.architectures or []:
        if architecture in _MASKED_LM_CLASSES:
            return "masked"
        if architecture in _CAUSAL_LM_CLASSES:
            return "causal"
    raise InputspaceError(
        f"model architectures {config.architectures} are neither a masked nor a causal LM; "
        "inputspace needs a checkpoint of a masked-LM or causal-LM class (e.g. *ForMaskedLM, "
        "*ForCausalLM, GPT2LMHeadModel)"
    )


def _class_names(mapping: dict[str, str | tuple[str, ...]]) -> set[str]:
    names: set[str] = set()
    for value in mapping.values():
        names.update((value,) if isinstance(value, str) else value)
    return names


_MASKED_LM_CLASSES = _class_names(MODEL_FOR_MASKED_LM_MAPPING_NAMES)
_CAUSAL_LM_CLASSES = _class_names(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)


def auto_class(kind: str) -> type:
    return AutoModelForMaskedLM if kind == "masked" else AutoModelForCausalLM


def prepare(name: str, source: dict[str, Any], dest: Path, allow_downloads: bool = False) -> dict:
    """Materialise `source` into `dest` and return its manifest.

    Writes into a sibling `.partial` folder and renames it at the end, so a failure
    never leaves a half-prepared `dest` behind.
    """
    hub_offline(not allow_downloads)
    dest = Path(dest)
    partial = dest.with_name(dest.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        model, tokenizer, origin = _load(name, source, allow_downloads)
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        manifest = build_manifest(name, source, origin, model, tokenizer, partial)
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        partial.rename(dest)
        return manifest
    except OSError as error:
        raise WriteFailed(
            f"model {name!r}: could not write {partial} ({error.strerror or error}); "
            "free disk space or fix permissions, then rerun"
        ) from error
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def hub_offline(offline: bool) -> None:
    """Switch the hub client's offline mode for this process and its children.

    Offline, a cache miss fails at once instead of retrying the network for tens of
    seconds.
    """
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
        huggingface_hub.constants.HF_HUB_OFFLINE = True


def _load(name: str, source: dict[str, Any], allow_downloads: bool) -> Loaded:
    loaders = {
        "package_gguf": _load_package_gguf,
        "hub": lambda n, s: _load_hub(n, s, allow_downloads),
        "local": _load_local,
        "random": _load_random,
    }
    kind = source.get("kind")
    if kind not in loaders:
        raise InputspaceError(
            f"model {name!r}: unknown source kind {kind!r}; use one of {SOURCE_KINDS}"
        )
    return loaders[kind](name, source)


def _load_package_gguf(name: str, source: dict[str, Any]) -> Loaded:
    package, filename = source["package"], source["file"]
    folder = package_folder(name, package)
    gguf_path = folder / filename
    if not gguf_path.is_file():
        shipped = sorted(p.name for p in folder.glob("*.gguf"))
        raise ModelUnavailable(
            f"model {name!r}: package {package!r} has no file {filename!r} "
            f"(it ships {shipped}); fix source.file in the config"
        )
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=filename)
    # transformers reads only decoder (causal) LMs from GGUF files.
    quantized = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=filename, dtype=torch.float32
    )
    model = _without_quantization(quantized)
    origin = {
        "package_version": importlib.metadata.version(source.get("distribution", package)),
        "gguf_file": filename,
        "gguf_sha256": sha256_file(gguf_path),
    }
    return model, tokenizer, origin


def _without_quantization(quantized: PreTrainedModel) -> PreTrainedModel:
    """A plain fp32 model with the dequantized weights, whose saved config loads without gguf."""
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.architectures = [type(quantized).__name__]
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(quantized.state_dict())
    return plain.eval()


def _load_hub(name: str, source: dict[str, Any], allow_downloads: bool) -> Loaded:
    repo_id, revision = source["id"], source.get("revision", "main")
    where = f"{repo_id}@{revision}"
    try:
        config = AutoConfig.from_pretrained(
            repo_id, revision=revision, local_files_only=not allow_downloads
        )
        kind = model_kind(config)
        model = auto_class(kind).from_pretrained(
            repo_id, revision=revision, local_files_only=not allow_downloads
        )
        tokenizer = AutoTokenizer.from_pretrained(
            repo_id, revision=revision, local_files_only=not allow_downloads
        )
    except (OSError, ValueError) as error:
        reason = (
            "the hub is unreachable or refused it"
            if allow_downloads
            else "it is not in the local Hugging Face cache and downloads are off"
        )
        raise ModelUnavailable(
            f"model {name!r} ({where}) is unavailable: {reason}. Fix: populate the HF cache "
            f"on a machine with hub access (hf download {repo_id} --revision "
            f"{revision}) and copy it to $HF_HOME here, or point a 'local' source at a folder "
            f"holding the model [{type(error).__name__}]"
        ) from None
    # the commit the loaded files came from: the snapshot `revision` names in the cache
    return model.eval(), tokenizer, {"resolved_commit": cached_commit(repo_id, revision)}


def _load_local(name: str, source: dict[str, Any]) -> Loaded:
    folder = Path(source["path"]).expanduser()
    if not (folder / "config.json").is_file():
        raise ModelUnavailable(
            f"model {name!r}: local folder {str(folder)!r} holds no config.json; point "
            "source.path at a Hugging Face model folder (config, weights and tokenizer)"
        )
    try:
        kind = model_kind(AutoConfig.from_pretrained(folder))
        tokenizer = AutoTokenizer.from_pretrained(folder)
    except (OSError, ValueError) as error:
        raise ModelUnavailable(
            f"model {name!r}: local folder {str(folder)!r} could not be loaded "
            f"({first_line(error)}); it needs config, weights and tokenizer files"
        ) from None
    files = {name: sha256_file(path) for name, path in local_files(folder).items()}
    try:
        model = auto_class(kind).from_pretrained(folder)
    except Exception as error:  # unreadable weights raise pickle, safetensors, zip, OS errors
        weights = (
            ", ".join(p.name for p in sorted(folder.iterdir()) if p.suffix in WEIGHT_SUFFIXES)
            or "none found"
        )
        raise ModelUnavailable(
            f"model {name!r}: the weights in {str(folder)!r} ({weights}) do not load "
            f"({first_line(error)}); replace them with a valid checkpoint (.safetensors preferred)"
        ) from None
    return model.eval(), tokenizer, {"content_sha256": content_digest(files), "files_sha256": files}


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack")


def _load_random(name: str, source: dict[str, Any]) -> Loaded:
    fields = {k: v for k, v in source.items() if k != "kind"}
    model, tokenizer = random_model.build(random_model.TinySpec(**fields))
    return model, tokenizer, {}


def special_token_ids(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Named special-token ids and the full set of ids the tokenizer marks special."""
    named = {
        role: getattr(tokenizer, f"{role}_token_id", None)
        for role in ("bos", "eos", "pad", "unk", "cls", "sep", "mask")
    }
    special = set(tokenizer.all_special_ids)
    special |= {i for i, token in tokenizer.added_tokens_decoder.items() if token.special}
    return {"named": named, "all": sorted(special)}


def build_manifest(
    name: str,
    source: dict[str, Any],
    origin: dict[str, Any],
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    folder: Path,
) -> dict[str, Any]:
    embedding = model.get_input_embeddings()
    files = file_digests(folder, skip={MANIFEST})  # each file hashed once
    return {
        "name": name,
        "source": source,
        "revision": source.get("revision") or origin.get("package_version"),
        "origin": origin,
        "architecture": model.config.architectures[0],
        "model_type": model.config.model_type,
        "kind": model_kind(model.config),
        "vocab_size": int(embedding.num_embeddings),
        "tokenizer_size": len(tokenizer),
        "embedding_dim": int(embedding.embedding_dim),
        "special_token_ids": special_token_ids(tokenizer),
        "files_sha256": files,
        "transformers_version": transformers.__version__,
        "torch_version": torch.__version__,
    }


def check_unchanged(folder: Path) -> None:
    """DamagedFile unless every file of a prepared folder is still what prepare_model wrote."""
    damaged = damage(folder)
    if damaged:
        raise DamagedFile(f"prepared model {folder}: {damaged}")
