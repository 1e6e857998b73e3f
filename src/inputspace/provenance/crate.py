"""A run as an RO-Crate that follows the Provenance Run Crate profile (0.5): the form
deposits (Zenodo, WorkflowHub, a publisher's archive) and other tools read and validate.

What it holds: the workflow (Snakefile as the ComputationalWorkflow, its rules, scripts,
package, envs, schema and captions, at the checkout's git commit) and the run's config;
one CreateAction per job (its rule's SoftwareApplication as instrument, reached from the
workflow's HowToStep; its params by name; start and end time; where it ran and who ran
it; every file it read and made, with its sha256 and size), one ControlAction per job,
and the engine's OrganizeAction around them; the libraries each rule ran with; every
figure with its caption and its record (the `.provenance.json` beside it); each model by
its raw source's identity (GGUF sha256, hub commit, a local folder's content digest) and
the prepared files. Everything comes from the run's own records (inputspace.provenance.history,
the figures' records, the prepared models' manifests); nothing is computed again.

A book crate packs only chosen figures, the tables their jobs wrote, and the chain of
jobs and files behind them. Before anything is written, every file's sha256 is held
against what the jobs that read it recorded: a crate describes one consistent run or is
not made. The payload is hard-linked where it can be (no second copy on disk).
"""

import fnmatch
import hashlib
import io
import json
import mimetypes
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml
from rocrate.model.contextentity import ContextEntity
from rocrate.rocrate import ROCrate

from inputspace.errors import InputspaceError
from inputspace.hashing import sha256_file
from inputspace.model import source_content
from inputspace.model.manifest import MANIFEST, damage
from inputspace.provenance import history, record
from inputspace.provenance.gitstate import git_state
from inputspace.provenance.place import describe_place

RO_CRATE = "1.1"  # the RO-Crate version the run crate profiles are built on
PROFILES = (  # (permalink, name): the Provenance Run Crate and the profiles it extends
    ("https://w3id.org/ro/wfrun/process/0.5", "Process Run Crate"),
    ("https://w3id.org/ro/wfrun/workflow/0.5", "Workflow Run Crate"),
    ("https://w3id.org/ro/wfrun/provenance/0.5", "Provenance Run Crate"),
    ("https://w3id.org/workflowhub/workflow-ro-crate/1.0", "Workflow RO-Crate"),
)
TERMS = {"sha256": "http://schema.org/sha256"}  # schema.org's; not in the 1.1 context
FIGURES = (".png", ".gif", ".pdf", ".svg")
FORMATS = {  # what mimetypes does not know
    ".parquet": "application/vnd.apache.parquet",
    ".safetensors": "application/octet-stream",
    ".smk": "text/x-python",
    ".py": "text/x-python",
    ".yaml": "application/yaml",
    ".md": "text/markdown",
    ".rst": "text/x-rst",
    ".log": "text/plain",
    ".jinja": "text/plain",
}
WORKFLOW_FILES = (  # the workflow as the crate holds it, relative to its folder
    "Snakefile",
    "rules/*.smk",
    "scripts/*.py",
    "src/inputspace/**/*.py",
    "envs/*.yaml",
    "schemas/*.yaml",
    "report/*.rst",
    "profiles/*/config.yaml",
    "requirements.txt",
    "requirements.lock",
    "pyproject.toml",
    "setup.sh",
)
FIRST_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
BOOKKEEPING = {".snakemake_timestamp"}  # Snakemake's mark in a folder it made
RUN_CONFIG = "run-config.yaml"  # the run's whole config, as Snakemake held it
COMPLETED = "http://schema.org/CompletedActionStatus"
BIOSCHEMAS_WORKFLOW = "https://bioschemas.org/profiles/ComputationalWorkflow/1.0-RELEASE"
LICENSE = "https://spdx.org/licenses/Apache-2.0"


class CrateError(InputspaceError):
    """The run cannot be published as it is."""


@dataclass(frozen=True)
class Workflow:
    """What the Snakefile tells the crate about the workflow and the run."""

    root: Path  # the workflow's folder
    rules: dict[str, dict[str, str | None]]  # rule -> doc, script, file (relative to root)
    captions: dict[str, str]  # figure file -> its caption file (relative to root)
    configfiles: tuple[str, ...]  # as Snakemake was given them
    config: dict[str, Any]  # the run's whole config
    engine: str  # Snakemake's version


@dataclass(frozen=True)
class Packed:
    """What a built crate holds."""

    files: int
    size: int  # bytes, the metadata file included
    jobs: int
    figures: list[str]


def chosen(entries: Iterable[str], figures: Iterable[str]) -> list[str]:
    """The figure files `entries` name (a path as the run writes it, or a glob pattern
    such as results/figures/bark/kl.*), in the run's order; one line naming an entry
    that names none."""
    figures = list(figures)
    picked: list[str] = []
    for entry in entries:
        matches = [f for f in figures if fnmatch.fnmatchcase(f, entry)]
        if not matches:
            examples = ", ".join(figures[:3]) + (", ..." if len(figures) > 3 else "")
            raise CrateError(
                f"crate_figures: {entry!r} names no figure of this config; name figure "
                f"files as the run writes them, or glob patterns ({examples})"
            )
        picked += [f for f in matches if f not in picked]
    return picked


def build(
    workdir: Path,
    workflow: Workflow,
    targets: list[str],
    destination: Path,
    book: bool = False,
) -> Packed:
    """Write the crate of the jobs behind `targets` (paths relative to `workdir`) to
    `destination` (made anew, all or nothing). `book`: the targets are chosen figures,
    and only they, their tables and what is behind them are packed."""
    jobs = history.chain(targets, history.jobs_by_output(workdir))
    files = _Files(Path(workdir), workflow.root)
    contents = _contents(jobs, targets, book)
    for job in jobs:
        for path in (*job.inputs, *contents[job]):
            files.add(path)
    problems = _inconsistencies(jobs, files)
    if problems:
        raise CrateError(problems[0] + (f" (and {len(problems) - 1} more)" if problems[1:] else ""))
    builder = _Builder(workflow, files)
    builder.describe(jobs, contents, [t for t in targets if t in files.digests])
    return _write(builder.crate, files, Path(destination), jobs, targets)


# ------------------------------------------------------------------ what is packed


def _contents(jobs: list[history.Job], targets: list[str], book: bool) -> dict:
    """Each job's outputs the crate holds: all of them for a whole run; for a book,
    the chosen figures among them, the tables beside them, and what a later job read."""
    if not book:
        return {job: job.outputs for job in jobs}
    wanted = set(targets) | {path for job in jobs for path in job.inputs}
    contents = {}
    for job in jobs:
        draws = any(path in targets for path in job.outputs)
        contents[job] = tuple(
            p for p in job.outputs if p in wanted or (draws and not p.endswith(FIGURES))
        )
    return contents


class _Files:
    """The run's files the crate holds: where each lies and where it goes in the crate,
    and the sha256 of each file (each file of a folder)."""

    def __init__(self, workdir: Path, root: Path):
        self.workdir, self.root = workdir, root
        self.digests: dict[str, dict[str, str]] = {}  # run path -> {file in it: sha256}
        self.hashed: dict[Path, str] = {}  # each file read, by where it lies

    def sha256_of(self, file: Path) -> str:
        if file not in self.hashed:
            self.hashed[file] = sha256_file(file)
        return self.hashed[file]

    def add(self, path: str) -> None:
        if path in self.digests:
            return
        full = self.full(path)
        if full.is_dir():
            found = sorted(p for p in full.rglob("*") if p.is_file() and p.name not in BOOKKEEPING)
            self.digests[path] = {p.relative_to(full).as_posix(): self.sha256_of(p) for p in found}
        elif full.is_file():
            self.digests[path] = {"": self.sha256_of(full)}
            sidecar = Path(str(full) + record.SIDECAR)
            if full.suffix in FIGURES and sidecar.is_file():
                self.add(path + record.SIDECAR)
        else:
            raise CrateError(f"{path}: missing; make it again with snakemake, then build the crate")

    def full(self, path: str) -> Path:
        return Path(self.workdir, path)

    def in_crate(self, path: str) -> str:
        """Where a run's file lies in the crate: its path in the working directory; a
        file of the workflow outside it at its path in the workflow; else under inputs/."""
        full = self.full(path).resolve()
        for base in (self.workdir.resolve(), self.root.resolve()):
            if full.is_relative_to(base):
                return full.relative_to(base).as_posix()
        return f"inputs/{quote(str(full), safe='')}"

    def sha256(self, path: str) -> str | None:
        return self.digests.get(path, {}).get("")


def _inconsistencies(jobs: list[history.Job], files: _Files) -> list[str]:
    """Lines naming each file that is no longer what a job recorded reading or making."""
    found = []
    for job in jobs:
        recorded = {**job.input_sha256, **_figure_digests(job, files)}
        for path, digest in recorded.items():
            now = files.sha256(path)
            if now and now != digest:
                found.append(
                    f"{path}: not the file {job.name} recorded (sha256 {digest[:12]}..., now "
                    f"{now[:12]}...); make the run consistent with: snakemake --forcerun {path} "
                    "(and the run's --configfile), then build the crate again"
                )
        for path in job.outputs:
            damaged = files.full(path).is_dir() and damage(files.full(path), files.sha256_of)
            if damaged:
                found.append(f"{path}: {damaged}")
    return found


def _figure_digests(job: history.Job, files: _Files) -> dict[str, str]:
    """The sha256 of each input and table a figure's record names."""
    digests = {}
    for figure in job.outputs:
        sidecar = files.full(figure + record.SIDECAR)
        if figure.endswith(FIGURES) and sidecar.is_file():
            data = record.read(files.full(figure))
            for item in [*(data.get("inputs") or []), *(data.get("outputs") or [])]:
                if item.get("sha256"):
                    digests[item["path"]] = item["sha256"]
    return digests


# ------------------------------------------------------------------ the metadata


class _Builder:
    """The crate's metadata, entity by entity, with rocrate."""

    def __init__(self, workflow: Workflow, files: _Files):
        self.workflow, self.files = workflow, files
        self.crate = ROCrate(version=RO_CRATE)
        self.crate.metadata.extra_terms.update(TERMS)
        self.entities: dict[str, Any] = {}  # run path -> its data entity

    def describe(self, jobs: list[history.Job], contents: dict, results: list[str]) -> None:
        self._root(jobs, results)
        main = self._workflow_files()
        for path in self.files.digests:
            self._data_entity(path)
        tools = {rule: self._tool(rule, jobs) for rule in dict.fromkeys(j.rule for j in jobs)}
        steps = self._steps(jobs, tools, main)
        controls = [self._job(job, contents[job], tools[job.rule], steps) for job in jobs]
        self._run(main, jobs, controls, results)
        self._readme(jobs, results)

    # -- the crate and its workflow

    def _root(self, jobs: list[history.Job], results: list[str]) -> None:
        root = self.crate.root_dataset
        configs = _workflow_paths(self.workflow.root, self.workflow.configfiles, [])
        config = ", ".join(configs) or "config.yaml"
        figures = [p for p in self.files.digests if p.endswith(FIGURES)]
        root["name"] = f"inputspace run ({config}): {len(figures)} figure files, {len(jobs)} jobs"
        root["description"] = (
            "A run of the inputspace workflow (gradient descent in the input-embedding "
            "space of language models) as a Provenance Run Crate: the workflow, the run's "
            "config, every job with its params, times, place and files (each with its "
            "sha256), the libraries it ran with, and every figure with its caption and "
            "record. Check it with: python -m inputspace.provenance.crate_check <this folder>"
        )
        root["datePublished"] = _iso(datetime.now(UTC).timestamp())
        root["license"] = self._license()
        for permalink, name in PROFILES:
            profile = self._context(
                permalink, "CreativeWork", name=name, version=permalink.rsplit("/", 1)[1]
            )
            root.append_to("conformsTo", profile)

    def _license(self) -> Any:
        return self._context(LICENSE, "CreativeWork", name="Apache License 2.0")

    def _workflow_files(self) -> Any:
        root = self.workflow.root
        git = git_state(root)
        main = self.crate.add_workflow(
            root / "Snakefile",
            "Snakefile",
            main=True,
            lang="snakemake",
            lang_version=self.workflow.engine,
            properties={
                "@type": ["File", "SoftwareSourceCode", "ComputationalWorkflow", "HowTo"],
                "name": "inputspace",
                "description": _describe_git(git),
                "version": git.get("commit") or "not a git checkout",
                "license": self._license(),
                "encodingFormat": "text/x-python",
            },
        )
        main["conformsTo"] = self._context(
            BIOSCHEMAS_WORKFLOW, "CreativeWork", name="Bioschemas ComputationalWorkflow profile"
        )
        for path in _workflow_paths(root, self.workflow.configfiles):
            if path != "Snakefile":
                self._file(root / path, path, self._file_properties(root / path))
        self._run_config()
        return main

    def _run_config(self) -> None:
        text = yaml.safe_dump(self.workflow.config, sort_keys=False).encode()
        self._file(
            io.BytesIO(text),
            RUN_CONFIG,
            {
                "name": "the run's whole config (config file, --config and defaults)",
                "encodingFormat": "application/yaml",
                "contentSize": str(len(text)),
                "sha256": hashlib.sha256(text).hexdigest(),
            },
        )

    # -- files

    def _data_entity(self, path: str) -> Any:
        digests = self.files.digests[path]
        where = self.files.in_crate(path)
        if "" in digests:
            entity = self._file(self.files.full(path), where, self._file_properties(path))
        else:
            entity = self.crate.add_dataset(dest_path=where, properties={"name": Path(path).name})
            for name, digest in digests.items():
                part = self._file(
                    self.files.full(path) / name,
                    f"{where}/{name}",
                    self._file_properties(f"{path}/{name}", digest),
                )
                entity.append_to("hasPart", part)
        if path.endswith(record.SIDECAR):
            figure = self.entities.get(path.removesuffix(record.SIDECAR))
            if figure is not None:
                entity["about"] = figure
                figure["subjectOf"] = entity
        self.entities[path] = entity
        return entity

    def _file(self, source: Any, where: str, properties: dict) -> Any:
        return self.crate.add_file(source, dest_path=where, properties=properties)

    def _file_properties(self, path: Any, digest: str | None = None) -> dict[str, Any]:
        full = Path(path) if Path(path).is_absolute() else self.files.full(str(path))
        suffix = full.suffix
        found = {
            "name": full.name,
            "contentSize": str(full.stat().st_size),
            "sha256": digest or self.files.sha256(str(path)) or sha256_file(full),
            "encodingFormat": FORMATS.get(suffix)
            or mimetypes.guess_type(full.name)[0]
            or "application/octet-stream",
        }
        if suffix in FIGURES and not str(path).endswith(record.SIDECAR):
            found["@type"] = ["File", "ImageObject"]
            caption = self._caption(str(path))
            if caption:
                found["caption"] = caption
        if str(path).endswith(record.SIDECAR):
            found["description"] = "the figure's provenance record (also inside the figure)"
        return found

    def _caption(self, figure: str) -> str | None:
        caption = self.workflow.captions.get(figure)
        full = self.workflow.root / caption if caption else None
        return full.read_text().strip() if full and full.is_file() else None

    # -- tools and steps

    def _tool(self, rule: str, jobs: list[history.Job]) -> Any:
        described = self.workflow.rules.get(rule) or {}
        code = _code_param(jobs, rule)
        tool = self._context(
            f"#rule/{quote(rule)}",
            "SoftwareApplication",
            name=f"rule {rule}",
            description=described.get("doc") or f"the workflow's rule {rule}",
            version=(code or {}).get("digest", "not recorded"),
            url=described.get("file"),
        )
        script = described.get("script")
        if script and (self.workflow.root / script).is_file():
            tool["mainEntity"] = self.crate.get(script)
        for name, version in sorted(_libraries_of(jobs, rule).items()):
            tool.append_to("softwareRequirements", self._library(name, version))
        for name in _param_names(jobs, rule):
            parameter = self._context(
                f"#rule/{quote(rule)}/param/{quote(name)}",
                "FormalParameter",
                name=name,
                additionalType="Text",
                description=f"param {name} of rule {rule} (JSON)",
            )
            tool.append_to("input", parameter)
        return tool

    def _library(self, name: str, version: str) -> Any:
        if name == "python":
            url = f"https://www.python.org/downloads/release/python-{version.replace('.', '')}/"
            return self._context(
                url, "SoftwareApplication", name="Python", version=version, url=url
            )
        url = f"https://pypi.org/project/{name}/{version}/"
        return self._context(url, "SoftwareApplication", name=name, version=version, url=url)

    def _steps(self, jobs: list[history.Job], tools: dict, main: Any) -> dict[str, Any]:
        steps = {}
        for rule, position in _positions(jobs).items():
            step = self._context(
                f"#step/{quote(rule)}",
                "HowToStep",
                name=f"step {rule}",
                position=str(position),
                workExample=tools[rule],
            )
            main.append_to("step", step)
            main.append_to("hasPart", tools[rule])
            steps[rule] = step
        return steps

    # -- jobs

    def _job(self, job: history.Job, outputs: tuple[str, ...], tool: Any, steps: dict) -> Any:
        key = _job_key(job)
        note = job.note or {}
        action = self.crate.add_action(
            tool,
            f"#job/{key}",
            object=[self.entities[p] for p in job.inputs if p in self.entities]
            + self._params(job, key),
            result=[self.entities[p] for p in self._made(outputs)],
            properties={
                "name": f"Run of rule {job.name}",
                "description": _describe_job(job),
                "actionStatus": COMPLETED,
            },
        )
        for key_, at in (("startTime", job.start), ("endTime", job.end)):
            if at is not None:
                action[key_] = _iso(at)
        if note.get("user"):
            action["agent"] = self._person(note["user"])
        if note.get("made_on"):
            action["location"] = self._place(note["made_on"])
        logs = [self._log(path) for path in job.logs]
        if any(logs):
            action["subjectOf"] = [log for log in logs if log]
        if job.rule == "prepare_model":
            self._raw_models(job, action)
        self.crate.root_dataset.append_to("mentions", action)
        return self._context(
            f"#control/{key}",
            "ControlAction",
            name=f"orchestrate rule {job.name}",
            instrument=steps[job.rule],
            object=action,
            actionStatus=COMPLETED,
        )

    def _made(self, outputs: tuple[str, ...]) -> list[str]:
        sidecars = [p + record.SIDECAR for p in outputs if p + record.SIDECAR in self.entities]
        return [p for p in (*outputs, *sidecars) if p in self.entities]

    def _params(self, job: history.Job, key: str) -> list[Any]:
        named = (job.note or {}).get("params")
        if named is None:
            named = {"params (unnamed, as Snakemake recorded them)": list(job.params)}
        values = []
        for name, value in named.items():
            value = self._context(
                f"#job/{key}/param/{quote(name)}", "PropertyValue", name=name, value=_json(value)
            )
            formal = self.crate.get(f"#rule/{quote(job.rule)}/param/{quote(name)}")
            if formal is not None:
                value["exampleOfWork"] = formal
                formal.append_to("workExample", value)
            values.append(value)
        return values

    def _log(self, path: str) -> Any:
        full = self.files.full(path)
        if not full.is_file():
            return None
        self.files.digests[path] = {"": self.files.sha256_of(full)}
        return self._data_entity(path)

    def _person(self, user: str) -> Any:
        return self._context(f"#user/{quote(user)}", "Person", name=user)

    def _place(self, made_on: dict[str, Any]) -> Any:
        """The machine a job ran on: a host, or a SLURM cluster's node."""
        slurm = made_on.get("slurm")
        if not slurm:
            host = str(made_on.get("host"))
            return self._context(f"#host/{quote(host)}", "Place", name=f"host {host}")
        node, cluster = str(slurm.get("node")), str(slurm.get("cluster"))
        return self._context(
            f"#slurm/{quote(cluster)}/{quote(node)}",
            "Place",
            name=f"node {node} of SLURM cluster {cluster} (partition {slurm.get('partition')})",
        )

    def _raw_models(self, job: history.Job, action: Any) -> None:
        """A prepare_model job read its model's raw source: each prepared folder's
        manifest names it (GGUF sha256, hub commit, a local folder's content digest)."""
        for folder in job.outputs:
            manifest_path = self.files.full(folder) / MANIFEST
            if not manifest_path.is_file():
                continue
            manifest = _json_file(manifest_path)
            raw, origin = manifest.get("source") or {}, manifest.get("origin")
            url = source_content.published_at(raw, origin)
            source = self._context(
                f"#model-source/{quote(Path(folder).name)}",
                "CreativeWork",
                name=f"raw model source of {Path(folder).name}",
                description=record.raw_model(manifest),
                identifier=source_content.pin(raw, origin),
                **({"url": url} if url else {}),
            )
            action.append_to("object", source)
            if folder in self.entities:
                self.entities[folder]["isBasedOn"] = source

    # -- the run

    def _run(self, main: Any, jobs: list[history.Job], controls: list, results: list) -> None:
        """The workflow's run (its config, the files and raw models no job made, what it
        made) and Snakemake's run of it, which orchestrated every job."""
        configs = [RUN_CONFIG, *_workflow_paths(self.workflow.root, self.workflow.configfiles, [])]
        made = {p for job in jobs for p in job.outputs}
        sources = [self.entities[p] for job in jobs for p in job.inputs if p not in made]
        models = [e for e in self.crate.get_entities() if e.id.startswith("#model-source/")]
        run = self.crate.add_action(
            main,
            "#run",
            object=_unique([self.crate.get(c) for c in configs] + sources + models),
            result=[self.entities[p] for p in results if p in self.entities],
            properties={
                "name": "Run of the inputspace workflow",
                "description": f"{len(jobs)} jobs of Snakemake {self.workflow.engine}",
                "actionStatus": COMPLETED,
            },
        )
        self._times(run, jobs)
        users = {(job.note or {}).get("user") for job in jobs} - {None}
        if len(users) == 1:
            run["agent"] = self._person(users.pop())
        engine = self._context(
            f"https://pypi.org/project/snakemake/{self.workflow.engine}/",
            "SoftwareApplication",
            name="Snakemake",
            version=self.workflow.engine,
            url="https://snakemake.github.io",
        )
        organize = self._context(
            "#engine-run",
            "OrganizeAction",
            name=f"Run of Snakemake {self.workflow.engine}",
            instrument=engine,
            object=controls,
            result=run,
            actionStatus=COMPLETED,
        )
        self._times(organize, jobs)
        for action in (run, organize):
            self.crate.root_dataset.append_to("mentions", action)

    def _readme(self, jobs: list[history.Job], results: list[str]) -> None:
        """README.md: what the crate is, how to check it, and its figures."""
        root = self.crate.root_dataset
        lines = [f"# {root['name']}", "", root["description"], "", "## Figures", ""]
        for figure in (r for r in results if r.endswith(FIGURES)):
            caption = FIRST_SENTENCE.split(" ".join((self._caption(figure) or "").split()))[0]
            lines.append(f"- `{self.files.in_crate(figure)}`: {caption}".rstrip(": "))
        lines += [
            "",
            f"{len(jobs)} jobs made them; each is a CreateAction in ro-crate-metadata.json, "
            "with its params, times, place and files. Each figure's record lies beside it "
            f"({record.SIDECAR}) and inside it.",
            "",
        ]
        text = "\n".join(lines).encode()
        readme = self._file(
            io.BytesIO(text),
            "README.md",
            {"name": "README.md", "encodingFormat": "text/markdown", "about": root},
        )
        readme["contentSize"], readme["sha256"] = str(len(text)), hashlib.sha256(text).hexdigest()

    def _times(self, action: Any, jobs: list[history.Job]) -> None:
        starts = [job.start for job in jobs if job.start is not None]
        ends = [job.end for job in jobs if job.end is not None]
        if starts:
            action["startTime"] = _iso(min(starts))
        if ends:
            action["endTime"] = _iso(max(ends))

    def _context(self, entity_id: str, kind: str, **properties: Any) -> Any:
        found = self.crate.get(entity_id)
        if found is not None:
            return found
        return self.crate.add(
            ContextEntity(self.crate, entity_id, properties={"@type": kind, **properties})
        )


# ------------------------------------------------------------------ small helpers


def _workflow_paths(
    root: Path, configfiles: Iterable[str], patterns: Iterable[str] = WORKFLOW_FILES
) -> list[str]:
    """The workflow's files and the run's config files in its folder, relative to it."""
    found = {
        p.relative_to(root).as_posix()
        for pattern in patterns
        for p in root.glob(pattern)
        if p.is_file() and "__pycache__" not in p.parts
    }
    for config in configfiles:
        full = (root / config).resolve()
        if full.is_file() and full.is_relative_to(root.resolve()):
            found.add(full.relative_to(root.resolve()).as_posix())
    return sorted(found)


def _positions(jobs: list[history.Job]) -> dict[str, int]:
    """Each rule's step position: after every rule whose outputs its jobs read."""
    maker = {path: job.rule for job in jobs for path in job.outputs}
    position: dict[str, int] = {}
    for job in jobs:  # producers first
        before = [position[maker[p]] for p in job.inputs if maker.get(p, job.rule) != job.rule]
        position[job.rule] = max(position.get(job.rule, 0), 1 + max(before, default=-1))
    return position


def _job_key(job: history.Job) -> str:
    if job.wildcards:
        return "/".join(
            [quote(job.rule)] + [f"{quote(k)}={quote(str(v))}" for k, v in job.wildcards.items()]
        )
    return f"{quote(job.rule)}/{quote(job.outputs[0], safe='')}"


def _describe_job(job: history.Job) -> str:
    note = job.note or {}
    where = (
        f"ran on {describe_place(note['made_on'])}"
        if note.get("made_on")
        else "where it ran: not recorded (its log holds no note)"
    )
    parts = [f"Snakemake job of rule {job.name}", where]
    if note.get("user"):
        parts.append(f"as {note['user']}")
    if note.get("threads"):
        parts.append(f"{note['threads']} threads")
    if job.external_id:
        parts.append(f"scheduler job {job.external_id}")
    libraries = note.get("libraries")
    if libraries:
        parts.append("libraries " + ", ".join(f"{k} {v}" for k, v in sorted(libraries.items())))
    return "; ".join(parts)


def _describe_git(git: dict[str, Any]) -> str:
    commit = git.get("commit")
    if not commit:
        return "The inputspace workflow (its folder was not a git checkout when packed)."
    dirty = " with uncommitted changes" if git.get("dirty") else ""
    return f"The inputspace workflow at git commit {commit}{dirty}."


def _code_param(jobs: list[history.Job], rule: str) -> dict | None:
    for job in jobs:
        code = ((job.note or {}).get("params") or {}).get("code")
        if job.rule == rule and isinstance(code, dict):
            return code
    return None


def _libraries_of(jobs: list[history.Job], rule: str) -> dict[str, str]:
    """The libraries the rule's jobs ran with (as each job's note has them)."""
    found = {}
    for job in jobs:
        if job.rule == rule:
            for name, version in ((job.note or {}).get("libraries") or {}).items():
                if version:
                    found[name] = version
    return found


def _param_names(jobs: list[history.Job], rule: str) -> list[str]:
    names = {
        name for job in jobs if job.rule == rule for name in (job.note or {}).get("params") or {}
    }
    return sorted(names)


def _unique(entities: list[Any]) -> list[Any]:
    seen, found = set(), []
    for entity in entities:
        if entity is not None and entity.id not in seen:
            seen.add(entity.id)
            found.append(entity)
    return found


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="seconds")


def _json(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def _json_file(path: Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())


# ------------------------------------------------------------------ writing


def _write(
    crate: ROCrate, files: _Files, destination: Path, jobs: list[history.Job], targets: list
) -> Packed:
    """The payload (hard links where it can) and the metadata, in a partial folder that
    becomes `destination` only when whole."""
    partial = destination.with_name(destination.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        for path, digests in files.digests.items():
            for name in digests:
                source = files.full(path) / name if name else files.full(path)
                _place(source, partial / files.in_crate(path) / name)
        _single_values(crate)
        crate.write(partial)
        shutil.rmtree(destination, ignore_errors=True)
        os.replace(partial, destination)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    payload = [p for p in destination.rglob("*") if p.is_file()]
    return Packed(
        files=len(payload),
        size=sum(p.stat().st_size for p in payload),
        jobs=len(jobs),
        figures=[t for t in targets if t.endswith(FIGURES)],
    )


def publish(built: Path, destination: Path) -> None:
    """Put a built (and checked) crate where it is read from, in place of what was there."""
    shutil.rmtree(destination, ignore_errors=True)
    os.replace(built, destination)


def _single_values(crate: ROCrate) -> None:
    """A property with one value holds it alone, not in a list (RO-Crate 1.1's JSON-LD
    recommendation)."""
    for entity in crate.get_entities():
        properties = entity.properties()
        for name, value in properties.items():
            if isinstance(value, list) and len(value) == 1:
                properties[name] = value[0]


def _place(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)
