"""What made each figure, recorded beside it (`fig.png.provenance.json`) and inside it
(PNG text chunk, GIF comment, PDF document info, SVG metadata).

A record holds a digest of the picture itself (which the embedded record does not
change); the job's params: the config values its rule reads (`config`), its code's digest
(`code`) and the libraries it ran with (`libraries`, each one's version as installed where
the job ran), exactly what Snakemake reruns the rule on; the models it shows, each by its
raw source (GGUF sha256, hub commit, local folder's content digest) and by the sha256 of
every prepared file; the git commit; where it was made; the runs behind it (device,
precision, seed); every input with its sha256; the job's other outputs (the tables drawn)
with theirs; and the whole config of the run (what `figure_check --rebuild` remakes it
from). inputspace.provenance.record turns a record into the lines a person reads. Whether a figure
is still what the workflow would make is Snakemake's to say (`inputspace.provenance.audit`).
"""

import hashlib
import html
import json
import platform
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from inputspace.files import atomic_output
from inputspace.hashing import sha256_file
from inputspace.model.manifest import MANIFEST, is_prepared, read_manifest
from inputspace.optimisation.trajectory import RUN_METADATA
from inputspace.provenance import code_digest
from inputspace.provenance.code_digest import installed_versions
from inputspace.provenance.gitstate import git_state
from inputspace.provenance.place import where_made
from inputspace.provenance.record import SIDECAR, VECTOR

KEY = "inputspace:provenance"

# ------------------------------------------------------------------ code and environment


def runtime_libraries(
    planned: dict[str, str] | None, code: dict[str, str] | None = None, root: Path | None = None
) -> dict[str, str | None]:
    """Python's version here and the version installed here of each library the job's
    params name (the rule's libraries as Snakemake computed them); where they name a conda
    env instead, of each library the rule's code imports, found here."""
    names = [name for name in planned or {} if name not in ("python", "conda env")]
    if planned and "conda env" in planned and code and root:
        script, package = Path(root) / code["script"], Path(root) / "src" / code_digest.PACKAGE
        names = [
            n
            for n in code_digest.libraries(script, package, code_digest.Environment())
            if n != "python"
        ]
    return {"python": platform.python_version(), **installed_versions(names)}


LOCK = "requirements.lock"  # every library setup.sh installs, with versions and hashes


def lock_record(root: Path) -> dict[str, str] | None:
    """The lock file the environment was installed from, by its sha256 (None where the
    workflow folder has none)."""
    lock = Path(root) / LOCK
    return {"path": LOCK, "sha256": sha256_file(lock)} if lock.is_file() else None


# ------------------------------------------------------------------ inputs and models


def input_record(path: Path) -> dict[str, Any]:
    """A file with its sha256; a folder (a prepared model) by its manifest's sha256."""
    path = Path(path)
    if path.is_dir():
        manifest = path / MANIFEST
        return {
            "path": str(path),
            "kind": "folder",
            "manifest_sha256": sha256_file(manifest) if manifest.is_file() else None,
        }
    return {"path": str(path), "kind": "file", "sha256": sha256_file(path)}


MODEL_KEYS = (
    "source",
    "origin",
    "revision",
    "files_sha256",
    "architecture",
    "kind",
    "vocab_size",
    "embedding_dim",
)


def model_records(inputs: list[Path]) -> dict[str, Any]:
    """The prepared models among a job's inputs, by folder name: the raw source they came
    from (its `origin`: GGUF sha256, hub commit, local content digest) and the sha256 of
    every prepared file."""
    records = {}
    for folder in inputs:
        if not (Path(folder).is_dir() and is_prepared(folder)):
            continue
        manifest = read_manifest(folder)
        records[Path(folder).name] = {
            "folder": str(folder),
            **{key: manifest.get(key) for key in MODEL_KEYS},
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


@dataclass(frozen=True)
class Job:
    """What a finished job tells its figures' records."""

    rule: str
    wildcards: dict[str, str]
    params: dict[str, Any]  # as Snakemake evaluated them: what the rule reruns on
    inputs: list[Path]
    outputs: list[Path] = field(default_factory=list)  # its other outputs (tables)
    config: dict[str, Any] = field(default_factory=dict)  # the whole config of the run
    threads: int = 1


def record(job: Job, root: Path) -> dict[str, Any]:
    """The record every figure of `job` shares (each adds its own name and image digest).
    `root`: the workflow folder (for git)."""
    params = json.loads(json.dumps(job.params, default=str))  # plain JSON, as compared
    code = params.pop("code", None)
    planned = params.pop("libraries", None)
    libraries = runtime_libraries(planned, code, root)
    runs = run_records(job.inputs)
    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "made_on": where_made(),
        "rule": job.rule,
        "wildcards": dict(job.wildcards),
        "threads": job.threads,
        "models": model_records(job.inputs),
        "config": params,
        "device": sorted({run.get("device") for run in runs}) or None,
        "runs": runs,
        "git": git_state(root),
        "code": code,
        "libraries": libraries,
        **({"libraries_planned": planned} if planned and planned != libraries else {}),
        "environment_lock": lock_record(root),
        "inputs": [input_record(Path(p)) for p in job.inputs],
        "outputs": [
            {"path": str(p), "sha256": sha256_file(p)} for p in job.outputs if Path(p).is_file()
        ],
        "workflow_config": json.loads(json.dumps(job.config, default=str)),
    }


def stamp_figures(job: Job, figures: list[Path], root: Path) -> None:
    """Give each figure the job's record, inside it and beside it."""
    shared = record(job, root)  # inputs hashed once per job
    for figure in figures:
        stamp(Path(figure), {**shared, "figure": str(figure)})


def stamp(figure: Path, data: dict[str, Any]) -> None:
    """Embed `data` with the figure's image digest in the figure and write the sidecar."""
    figure = Path(figure)
    original = figure.read_bytes()
    data = {**data, "image_sha256": _digest_before_stamping(figure, original)}
    text = json.dumps(data, sort_keys=True)
    with atomic_output(figure) as partial:
        if figure.suffix == ".pdf":
            partial.write_bytes(_pdf_with_record(original, text))
        elif figure.suffix == ".svg":
            partial.write_bytes(_svg_with_record(original, text))
        else:
            _save_raster_with_record(figure, partial, text)
    with atomic_output(figure.with_name(figure.name + SIDECAR)) as partial:
        partial.write_text(json.dumps(data, indent=2, sort_keys=True))


def _digest_before_stamping(figure: Path, original: bytes) -> str:
    if figure.suffix == ".pdf":
        return hashlib.sha256(_pdf_base(original)).hexdigest()
    if figure.suffix == ".svg":
        return hashlib.sha256(original).hexdigest()
    return image_sha256(figure)


def image_sha256(figure: Path) -> str:
    """sha256 of what a figure shows, which its embedded record does not change: each
    frame's size and RGBA pixels for PNG and GIF; for PDF and SVG, the file's bytes
    without the record (which the stamp only adds)."""
    figure = Path(figure)
    if figure.suffix in VECTOR:
        data = figure.read_bytes()
        span = _record_span(figure.suffix, data)
        unstamped = data[: span[0]] + data[span[1] :] if span else data
        return hashlib.sha256(unstamped).hexdigest()
    total = hashlib.sha256()
    with Image.open(figure) as image:
        for frame in _frames(image):
            pixels = frame.convert("RGBA")
            total.update(repr(pixels.size).encode())
            total.update(pixels.tobytes())
    return total.hexdigest()


def embedded(figure: Path) -> dict[str, Any] | None:
    """The record inside a figure file, if any (ValueError if it is damaged)."""
    figure = Path(figure)
    if figure.suffix == ".pdf":
        text = _pdf_record_text(figure.read_bytes())
    elif figure.suffix == ".svg":
        text = _svg_record_text(figure.read_bytes())
    else:
        with Image.open(figure) as image:
            text = image.info.get(KEY) or image.info.get("comment")
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text) if text else None


# -------------------------------------------------------------- where each format keeps it


def _save_raster_with_record(figure: Path, partial: Path, text: str) -> None:
    with Image.open(figure) as image:
        image.load()
        if figure.suffix == ".png":
            info = PngInfo()
            info.add_text(KEY, text)
            dpi = image.info.get("dpi", (200, 200))
            image.save(partial, format="PNG", pnginfo=info, dpi=dpi)
            return
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


def _frames(image: Image.Image) -> list[Image.Image]:
    frames = []
    for index in range(getattr(image, "n_frames", 1)):
        image.seek(index)
        frames.append(image.copy())
    return frames


# A PDF gets its record as an incremental update: a new document-info dictionary (the old
# one's entries plus ours) appended after the file, with its own cross-reference section
# and trailer. Readers take the last trailer's info; the original file stays a prefix.
PDF_KEY = f"/{KEY}".encode()
PDF_TRAILER = re.compile(rb"trailer\s*<<(?P<body>.*?)>>\s*startxref\s*(?P<xref>\d+)\s*%%EOF", re.S)


def _pdf_with_record(original: bytes, text: str) -> bytes:
    trailers = list(PDF_TRAILER.finditer(original))
    if not trailers:
        raise ValueError("not a PDF with a classic trailer")
    last = trailers[-1]
    body = last["body"].decode("latin-1")
    size = int(re.search(r"/Size\s+(\d+)", body)[1])
    root = re.search(r"/Root\s+(\d+\s+\d+\s+R)", body)[1]
    info = re.search(r"/Info\s+(\d+)\s+\d+\s+R", body)
    entries = b""
    if info:
        found = re.search(rb"\n%s 0 obj\s*<<(.*?)>>\s*endobj" % info[1].encode(), original, re.S)
        entries = found[1].strip() if found else b""
    base = _pdf_base(original)
    obj = b"%d 0 obj\n<< %s\n%s %s >>\nendobj\n" % (size, entries, PDF_KEY, _pdf_string(text))
    xref_at = len(base) + len(obj)
    update = obj + (
        b"xref\n%d 1\n%010d 00000 n \ntrailer\n<< /Size %d /Root %s /Info %d 0 R /Prev %s >>\n"
        b"startxref\n%d\n%%%%EOF\n"
        % (size, len(base), size + 1, root.encode(), size, last["xref"], xref_at)
    )
    return base + update


def _pdf_base(original: bytes) -> bytes:
    return original if original.endswith(b"\n") else original + b"\n"


def _pdf_string(text: str) -> bytes:
    escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    return b"(" + escaped.encode("ascii") + b")"  # JSON with ensure_ascii: ASCII only


def _pdf_record_text(data: bytes) -> str | None:
    at = data.rfind(PDF_KEY + b" (")
    if at < 0:
        return None
    chars, i = [], at + len(PDF_KEY) + 2
    while i < len(data) and data[i : i + 1] != b")":
        if data[i : i + 1] == b"\\":
            i += 1
        chars.append(data[i : i + 1])
        i += 1
    if i >= len(data):
        raise ValueError("its PDF record string is cut off")
    return b"".join(chars).decode("ascii")


SVG_OPEN = f'<{KEY} xmlns:inputspace="urn:inputspace:provenance">'
SVG_RECORD = re.compile(rb"\n *<inputspace:provenance[^>]*>[^<]*</inputspace:provenance>")


def _svg_with_record(original: bytes, text: str) -> bytes:
    at = original.find(b"<metadata>")
    if at < 0:
        raise ValueError("an SVG without a <metadata> element")
    at += len(b"<metadata>")
    element = f"\n  {SVG_OPEN}{html.escape(text, quote=False)}</{KEY}>".encode()
    return original[:at] + element + original[at:]


def _svg_record_text(data: bytes) -> str | None:
    found = SVG_RECORD.search(data)
    if not found:
        return None
    inner = found[0].split(b">", 1)[1].rsplit(b"</", 1)[0]
    return html.unescape(inner.decode())


def _record_span(suffix: str, data: bytes) -> tuple[int, int] | None:
    """Where the stamp added the record to a vector file's bytes."""
    if suffix == ".svg":
        found = SVG_RECORD.search(data)
        return found.span() if found else None
    at = data.rfind(PDF_KEY + b" (")
    if at < 0:
        return None
    start = data.rfind(b"%%EOF", 0, at) + len(b"%%EOF\n")
    return start, len(data)
