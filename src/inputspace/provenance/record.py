"""A figure's record as a person reads it: one function, `describe`, turns a record into
lines; `python -m inputspace.provenance.figure_check` prints them and the report's provenance page
shows them. Records are written by inputspace.provenance.stamp, beside each figure
(`fig.png.provenance.json`) and inside it.
"""

import html
import json
from pathlib import Path
from typing import Any

from inputspace.model import source_content
from inputspace.provenance.place import describe_place

SIDECAR = ".provenance.json"
RASTER = (".png", ".gif")  # the figure formats that carry a record (inputspace.provenance.stamp)
VECTOR = (".pdf", ".svg")
FIGURE_SUFFIXES = RASTER + VECTOR
NOT_RECORDED = "not recorded"


def read(figure: Path) -> dict[str, Any]:
    """The record beside a figure made by the workflow."""
    return json.loads(Path(str(figure) + SIDECAR).read_text())


def describe(record: dict[str, Any]) -> list[str]:
    """The record as indented lines, each a label and what it names."""
    lines = [_line("made", _made(record))]
    for name, model in (record.get("models") or {}).items():
        lines.append(_line("model", f"{name}: {raw_model(model)}"))
        lines.append(_line("prepared", f"{name}: {prepared_model(model)}"))
    lines.append(_line("config", json.dumps(record.get("config"), sort_keys=True)))
    lines.append(_line("code", _code(record)))
    for run in record.get("runs") or []:
        named = ("device", "precision", "seed", "threads")
        settings = ", ".join(f"{k} {run[k]}" for k in named if run.get(k) is not None)
        lines.append(_line("run", f"{run['path']}: {settings}"))
    lines.append(_line("libraries", _versions(record)))
    for item in record.get("inputs") or []:
        lines.append(_line("input", f"{item['path']}: sha256 {_input_digest(item)}"))
    for item in record.get("outputs") or []:
        lines.append(_line("output", f"{item['path']}: sha256 {item['sha256']}"))
    return lines


def raw_model(model: dict[str, Any] | None) -> str:
    """Where a model's weights came from, with the digest or commit that pins them."""
    if not model:
        return "not prepared when the figure was made"
    return source_content.describe(model.get("source") or {}, model.get("origin"))


def prepared_model(model: dict[str, Any] | None) -> str:
    """The prepared folder and the sha256 of each of its files."""
    if not model:
        return NOT_RECORDED
    files = model.get("files_sha256") or {}
    listed = ", ".join(f"{name} {digest}" for name, digest in sorted(files.items()))
    return f"{model.get('folder', '(folder not recorded)')}: {listed or NOT_RECORDED}"


def as_html(records: list[dict[str, Any]]) -> str:
    """The report's provenance page: one section per figure, anchored by its path, with the
    lines `describe` gives and the params as JSON."""
    parts = ["<h1>Provenance of every figure</h1>"]
    for data in records:
        figure = html.escape(data["figure"])
        lines = html.escape("\n".join(describe(data)))
        params = html.escape(json.dumps(data.get("config"), indent=1, sort_keys=True))
        parts.append(
            f"<h2 id='{figure}'>{figure}</h2><pre>{lines}</pre>"
            f"<details><summary>its params (the config it read)</summary><pre>{params}"
            "</pre></details>"
        )
    style = "body{font-family:sans-serif;max-width:90em}pre{font-size:80%;white-space:pre-wrap}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><style>{style}</style></head>"
        f"<body>{''.join(parts)}</body></html>"
    )


def _line(label: str, text: str) -> str:
    return f"  {label:<9} {text}"


def _made(record: dict[str, Any]) -> str:
    wildcards = ", ".join(f"{k}={v}" for k, v in (record.get("wildcards") or {}).items())
    threads = f"{record['threads']} threads" if record.get("threads") else ""
    details = ", ".join(part for part in (wildcards, threads) if part)
    return (
        f"{record.get('created')} on {describe_place(record.get('made_on'))} by rule "
        f"{record.get('rule')}" + (f" ({details})" if details else "")
    )


def _code(record: dict[str, Any]) -> str:
    git, code = record.get("git") or {}, record.get("code") or {}
    commit = git.get("commit") or "(not a git checkout)"
    dirty = " (dirty tree)" if git.get("dirty") else ""
    return (
        f"git {commit}{dirty}; {code.get('script')} and the package modules it imports: "
        f"sha256 {code.get('digest')}"
    )


def _versions(record: dict[str, Any]) -> str:
    versions = record.get("libraries") or record.get("versions")
    if not versions:
        return NOT_RECORDED
    return ", ".join(f"{name} {version}" for name, version in versions.items())


def _input_digest(item: dict[str, Any]) -> str:
    if item.get("kind") == "folder":
        return f"{item.get('manifest_sha256')} (its manifest)"
    return str(item.get("sha256"))
