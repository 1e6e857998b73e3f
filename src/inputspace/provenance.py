"""What made each figure, recorded beside it (`fig.provenance.json`) and inside it (PNG
text chunk, GIF comment), and the audit that checks those records against the disk.

A record holds a digest of the picture itself (which the embedded record does not
change), the models (source, revision, weight sha256), the config values that
reach the figure (its scope: the models and experiment it shows and the top-level
keys its rules read), the code (git commit and dirty flag, and digests of the package,
the rule files and the figure's script), library versions, the device and seed of the
runs behind it, and every input file with its sha256.
"""

import functools
import hashlib
import html
import json
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from inputspace import cluster
from inputspace.config import without_notes
from inputspace.files import atomic_output
from inputspace.hashing import changed_files, recorded_files, sha256_file

SIDECAR = ".provenance.json"
PNG_KEY = "inputspace:provenance"
RUN_METADATA = b"inputspace.run"  # Parquet schema metadata written by the optimize rule
FIGURE_SUFFIXES = (".png", ".gif")
LIBRARIES = ("torch", "transformers", "snakemake", "inputspace", "numpy", "pandas", "matplotlib")


# ------------------------------------------------------------------ config scope


@dataclass(frozen=True)
class Scope:
    """Which config values reach a figure."""

    models: tuple[str, ...]
    experiment: str | None
    keys: tuple[str, ...]  # top-level config sections besides models and experiments

    def as_dict(self) -> dict[str, Any]:
        return {"models": list(self.models), "experiment": self.experiment, "keys": list(self.keys)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Scope":
        return cls(tuple(data["models"]), data["experiment"], tuple(data["keys"]))


def config_slice(config: dict[str, Any], scope: Scope) -> dict[str, Any]:
    """The part of `config` that reaches a figure of `scope` (missing entries are None)."""
    sliced: dict[str, Any] = {key: config.get(key) for key in scope.keys}
    sliced["models"] = {m: config["models"].get(m) for m in scope.models}
    if scope.experiment:
        experiment = config["experiments"].get(scope.experiment)
        sliced["experiments"] = {scope.experiment: experiment and without_notes(experiment)}
    return json.loads(json.dumps(sliced, default=str))  # plain JSON types, for comparison


# ------------------------------------------------------------------ code and environment


def digest_files(paths: list[Path], root: Path) -> str:
    """One sha256 over the relative names and contents of `paths`."""
    total = hashlib.sha256()
    for path in sorted(paths):
        total.update(str(path.relative_to(root)).encode())
        total.update(sha256_file(path).encode())
    return total.hexdigest()


def code_digests(root: Path, script: str | None) -> dict[str, str | None]:
    """Digests of the package, the rule files and the figure's script (relative to root)."""
    return {
        "package": digest_files(list((root / "src/inputspace").rglob("*.py")), root),
        "rules": digest_files([root / "Snakefile", *(root / "rules").glob("*.smk")], root),
        "script": script,
        "script_sha256": _script_digest(root, script),
    }


def _script_digest(root: Path, script: str | None) -> str | None:
    return sha256_file(root / script) if script and (root / script).is_file() else None


def git_state(root: Path) -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=30
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status) if status is not None else None}


def library_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


# ------------------------------------------------------------------ inputs and models


def input_record(path: Path) -> dict[str, Any]:
    """A file with its sha256; a folder (a prepared model) by its manifest's sha256."""
    path = Path(path)
    if path.is_dir():
        manifest = path / "manifest.json"
        return {
            "path": str(path),
            "kind": "folder",
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        }
    return {"path": str(path), "kind": "file", "sha256": sha256_file(path)}


def model_records(models: list[str], results: Path) -> dict[str, Any]:
    records = {}
    for name in models:
        manifest_file = results / "models" / name / "manifest.json"
        if not manifest_file.is_file():
            records[name] = None
            continue
        manifest = json.loads(manifest_file.read_text())
        records[name] = {
            key: manifest.get(key)
            for key in (
                "source",
                "revision",
                "weights_sha256",
                "files_sha256",
                "architecture",
                "kind",
                "vocab_size",
                "embedding_dim",
            )
        }
    return records


def run_records(inputs: list[Path]) -> list[dict[str, Any]]:
    """Device, precision and seed of the optimisation runs among the inputs."""
    runs = []
    for path in inputs:
        if Path(path).suffix != ".parquet":
            continue
        metadata = pq.read_schema(path).metadata or {}
        if RUN_METADATA in metadata:
            runs.append({"path": str(path), **json.loads(metadata[RUN_METADATA])})
    return runs


# ------------------------------------------------------------------ records


def record(
    figure: Path,
    rule: str,
    inputs: list[Path],
    scope: Scope,
    config: dict[str, Any],
    root: Path,
    script: str | None,
    results: Path = Path("results"),
) -> dict[str, Any]:
    runs = run_records(inputs)
    return {
        "figure": str(figure),
        "image_sha256": image_sha256(figure),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "made_on": cluster.where_made(),
        "rule": rule,
        "models": model_records(list(scope.models), results),
        "scope": scope.as_dict(),
        "config": config_slice(config, scope),
        "seed": _seeds(config, scope),
        "device": sorted({run.get("device") for run in runs}) or None,
        "runs": runs,
        "git": git_state(root),
        "code": code_digests(root, script),
        "versions": library_versions(),
        "inputs": [input_record(Path(p)) for p in inputs],
    }


def _seeds(config: dict[str, Any], scope: Scope) -> dict[str, Any]:
    seeds = {}
    if scope.experiment and scope.experiment in config["experiments"]:
        seeds["experiment"] = config["experiments"][scope.experiment].get("seed")
    if "geometry" in scope.keys:
        seeds["geometry"] = (config.get("geometry") or {}).get("seed")
    return seeds


def stamp(figure: Path, data: dict[str, Any]) -> None:
    """Write the sidecar and embed the same record in the image."""
    figure = Path(figure)
    text = json.dumps(data, sort_keys=True)
    with Image.open(figure) as image:
        image.load()
        with atomic_output(figure) as partial:
            if figure.suffix == ".png":
                info = PngInfo()
                info.add_text(PNG_KEY, text)
                image.save(
                    partial, format="PNG", pnginfo=info, dpi=image.info.get("dpi", (200, 200))
                )
            else:
                frames = _frames(image)
                frames[0].save(
                    partial,
                    format="GIF",
                    save_all=True,
                    append_images=frames[1:],
                    duration=image.info.get("duration", 300),
                    loop=0,
                    comment=text.encode(),
                )
    with atomic_output(figure.with_name(figure.name + SIDECAR)) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))


def stamp_outputs(snakemake: Any) -> list[Path]:
    """Stamp every figure among a finished job's outputs, if its rule declares a scope."""
    params = getattr(snakemake, "params", None)
    scope = params.get("provenance") if params is not None else None
    if not scope:
        return []
    root = Path(snakemake.scriptdir).parent
    script = f"scripts/{snakemake.rule}.py"
    figures = [Path(p) for p in snakemake.output if Path(p).suffix in FIGURE_SUFFIXES]
    if not figures:
        return []
    inputs = [Path(p) for p in snakemake.input]
    # one record per job (inputs hashed once); only the figure's own name differs
    shared = record(
        figures[0], snakemake.rule, inputs, Scope.from_dict(scope), snakemake.config, root, script
    )
    for figure in figures:
        stamp(figure, {**shared, "figure": str(figure), "image_sha256": image_sha256(figure)})
    return figures


def image_sha256(figure: Path) -> str:
    """sha256 of what a figure shows (each frame's size and RGBA pixels): the record
    embedded in the file does not change it, an edit of the picture does."""
    total = hashlib.sha256()
    with Image.open(figure) as image:
        for frame in _frames(image):
            pixels = frame.convert("RGBA")
            total.update(repr(pixels.size).encode())
            total.update(pixels.tobytes())
    return total.hexdigest()


def _frames(image: Image.Image) -> list[Image.Image]:
    frames = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frames.append(image.copy())
    return frames


def embedded(figure: Path) -> dict[str, Any] | None:
    """The record inside a PNG or GIF, if any."""
    with Image.open(figure) as image:
        text = image.info.get(PNG_KEY) or image.info.get("comment")
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text) if text else None


def read(figure: Path) -> dict[str, Any]:
    return json.loads(Path(str(figure) + SIDECAR).read_text())


# ------------------------------------------------------------------ audit


def audit_table(figures: Path, config: dict[str, Any], root: Path) -> pd.DataFrame:
    """One row per recorded figure under `figures`: fresh or stale, and why."""
    rows = []
    code_now = code_digests(root, None)  # package and rules: the same for every figure
    inputs_now: dict[str, dict[str, Any] | None] = {}  # figures share inputs: hash each once
    digest = functools.cache(sha256_file)  # and share model files: each hashed once per audit
    for sidecar in sorted(Path(figures).rglob(f"*{SIDECAR}")):
        data = json.loads(sidecar.read_text())
        status, why = audit(data, config, root, code_now, inputs_now, digest)
        rows.append(
            {
                "figure": data["figure"],
                "status": status,
                "why": why,
                "made": data["created"],
                "git_commit": data["git"]["commit"],
            }
        )
    return pd.DataFrame(rows, columns=["figure", "status", "why", "made", "git_commit"])


def audit(
    data: dict[str, Any],
    config: dict[str, Any],
    root: Path,
    code_now: dict[str, str | None] | None = None,
    inputs_now: dict[str, dict[str, Any] | None] | None = None,
    digest: Callable[[Path], str] = sha256_file,
    results: Path = Path("results"),
) -> tuple[str, str]:
    """('fresh' | 'stale', why) for one figure's record against the disk and `config`.
    `code_now`, `inputs_now` and a memoised `digest` let a caller auditing many figures
    share that work."""
    reasons = []
    for name, model in data["models"].items():
        if model:  # every file of the prepared model, as its record holds them
            changed = changed_files(results / "models" / name, recorded_files(model), digest)
            reasons.extend(f"model file {item}" for item in changed)
    figure = Path(data["figure"])
    if not figure.is_file():
        reasons.append("figure missing")
    inputs_now = {} if inputs_now is None else inputs_now
    for item in data["inputs"]:
        if item["path"] not in inputs_now:
            path = Path(item["path"])
            inputs_now[item["path"]] = input_record(path) if path.exists() else None
        now = inputs_now[item["path"]]
        if now is None:
            reasons.append(f"input missing: {item['path']}")
        elif now != item:
            reasons.append(f"input changed: {item['path']}")
    scope = Scope.from_dict(data["scope"])
    current = config_slice(config, scope)
    for key in sorted(set(current) | set(data["config"])):
        if current.get(key) != data["config"].get(key):
            reasons.append(f"config changed: {key}")
    script = data["code"]["script"]
    code_now = {
        **(code_now or code_digests(root, None)),
        "script_sha256": _script_digest(root, script),
    }
    for part in ("package", "rules", "script_sha256"):
        if code_now[part] != data["code"][part]:
            reasons.append(f"code changed: {part.removesuffix('_sha256')}")
    return ("stale", "; ".join(reasons)) if reasons else ("fresh", "inputs, config and code match")


def as_html(records: list[dict[str, Any]]) -> str:
    """One section per figure: its models, config, code, environment and inputs."""
    parts = ["<h1>Provenance of every figure</h1>"]
    for data in records:
        models = "".join(
            f"<li><b>{html.escape(name)}</b>: "
            f"{html.escape(json.dumps(m['source']) if m else 'not prepared')}, "
            f"revision {html.escape(str(m and m['revision']))}, weights sha256 "
            f"""{
                html.escape(
                    ", ".join(f"{k} {v}" for k, v in (m or {}).get("weights_sha256", {}).items())
                )
            }</li>"""
            for name, m in data["models"].items()
        )
        inputs = "".join(
            f"<li>{html.escape(i['path'])}: "
            f"{html.escape(str(i.get('sha256') or i.get('manifest_sha256')))}</li>"
            for i in data["inputs"]
        )
        git = data["git"]
        where = html.escape(cluster.describe_place(data.get("made_on")))
        parts.append(
            f"<h2>{html.escape(data['figure'])}</h2>"
            f"<p>rule <code>{html.escape(data['rule'])}</code>, "
            f"made {html.escape(data['created'])} on {where}; git "
            f"{html.escape(str(git['commit']))}{' (dirty tree)' if git['dirty'] else ''}; device "
            f"{html.escape(str(data['device']))}; seeds {html.escape(json.dumps(data['seed']))}</p>"
            "<p>versions: "
            f"{html.escape(', '.join(f'{k} {v}' for k, v in data['versions'].items()))}</p>"
            f"<ul>{models}</ul><details><summary>config values that reach it</summary><pre>"
            f"{html.escape(json.dumps(data['config'], indent=1))}</pre></details>"
            f"<details><summary>inputs (sha256)</summary><ul>{inputs}</ul></details>"
        )
    style = "body{font-family:sans-serif;max-width:70em}code,pre{font-size:85%}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )
