"""Is a crate what it says it is? Two checks, both offline:

- every file the crate lists is there, with the sha256 and size the crate records for it;
- roc-validator (the RO-Crate community's validator) passes the crate against the
  Provenance Run Crate 0.5 profile at the asked level (required by default).

The validator resolves the crate's JSON-LD context, https://w3id.org/ro/crate/1.1/context,
over the network unless its HTTP cache holds it. The rocrate package ships that very
document (rocrate/data/ro-crate.jsonld), so the check lays it in a cache of its own first
and runs the validator with --offline: the same answer on a machine without internet,
from pinned packages only.

    python -m inputspace.provenance.crate_check results/crate [--severity recommended]
    python -m inputspace.provenance.crate_check --cache DIR   # for rocrate-validator --offline

Exit status: 0 valid and every file as recorded; 1 not; 2 cannot check (one line why).
"""

import argparse
import io
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from inputspace.errors import InputspaceError
from inputspace.hashing import sha256_file

PROFILE = "provenance-run-crate-0.5"
CONTEXT = "https://w3id.org/ro/crate/1.1/context"
METADATA = "ro-crate-metadata.json"
TIMEOUT_S = 1800
VALIDATOR = "from rocrate_validator.cli import cli; cli()"


class CheckError(InputspaceError):
    """The crate could not be checked."""


@dataclass(frozen=True)
class Validation:
    """What the validator said."""

    passed: bool
    checks: int  # checks run at the asked level and above
    failed: int
    issues: list[str]  # one line each: severity, check, message, entity


def file_problems(folder: Path) -> list[str]:
    """One line for each file the crate lists that is missing, or whose sha256 or size
    is not the one the crate records."""
    problems = []
    for entity in _graph(folder):
        path = _local_path(entity.get("@id", ""))
        if path is None or "sha256" not in entity:
            continue
        file = Path(folder) / path
        if not file.is_file():
            problems.append(f"{path}: listed in the crate, but not in it")
        elif sha256_file(file) != entity["sha256"]:
            problems.append(f"{path}: its sha256 is not the one the crate records")
        elif "contentSize" in entity and str(file.stat().st_size) != str(entity["contentSize"]):
            problems.append(f"{path}: its size is not the one the crate records")
    return problems


def validate(folder: Path, severity: str = "required") -> Validation:
    """roc-validator's verdict on the crate against the Provenance Run Crate profile."""
    _graph(folder)  # one line if there is no crate to validate
    try:
        import rocrate_validator  # noqa: F401 (run below, in a process of its own)
    except ModuleNotFoundError:
        raise CheckError("roc-validator is not installed; run ./setup.sh") from None
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [
            *[sys.executable, "-c", VALIDATOR, "--disable-color", "-y", "validate"],
            *["--offline", "--cache-path", str(offline_cache(Path(scratch) / "cache"))],
            *["-p", PROFILE, "-l", severity, "-f", "json", "-o", str(report), "--no-paging"],
            str(Path(folder).resolve()),
        ]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise CheckError(f"the validator did not finish within {TIMEOUT_S} s") from None
        if not report.is_file():
            said = [line for line in (done.stderr + done.stdout).splitlines() if line.strip()]
            raise CheckError(f"the validator failed: {said[-1].strip() if said else 'no output'}")
        found = json.loads(report.read_text())
    statistics = found.get("statistics") or {}
    return Validation(
        passed=bool(found.get("passed")),
        checks=int(statistics.get("total_checks", 0)),
        failed=int(statistics.get("total_failed_checks", 0)),
        issues=[_issue(issue) for issue in found.get("issues") or []],
    )


def offline_cache(path: Path) -> Path:
    """An HTTP cache (requests-cache, SQLite) at `path` holding the RO-Crate 1.1 JSON-LD
    context from the installed rocrate package: rocrate-validator --offline --cache-path
    `path` then needs no network. Returns `path`."""
    import requests
    import requests_cache
    import rocrate
    import urllib3

    document = (Path(rocrate.__file__).parent / "data/ro-crate.jsonld").read_bytes()
    if json.loads(document).get("@id") != CONTEXT:
        raise CheckError(f"the installed rocrate does not ship {CONTEXT}; see requirements.txt")

    class Shipped(requests.adapters.BaseAdapter):
        def send(self, request, **kwargs):
            raw = urllib3.HTTPResponse(
                body=io.BytesIO(document),
                headers={"Content-Type": "application/ld+json"},
                status=200,
                preload_content=False,
            )
            return requests.adapters.HTTPAdapter().build_response(request, raw)

        def close(self):
            pass

    session = requests_cache.CachedSession(
        cache_name=str(path), backend="sqlite", allowable_codes=(200,)
    )
    session.mount(CONTEXT, Shipped())
    session.get(CONTEXT).raise_for_status()
    session.close()
    return Path(path)


def _graph(folder: Path) -> list[dict]:
    metadata = Path(folder) / METADATA
    if not metadata.is_file():
        raise CheckError(f"{folder}: no {METADATA}; is it a crate (snakemake crate makes one)?")
    try:
        return json.loads(metadata.read_text())["@graph"]
    except (ValueError, KeyError, TypeError):
        raise CheckError(f"{metadata}: not an RO-Crate metadata file") from None


def _local_path(identifier: str) -> str | None:
    """A data entity's path in the crate, or None for a contextual entity or a web one."""
    if not identifier or identifier.startswith("#") or urlparse(identifier).scheme:
        return None
    if identifier in ("./", METADATA):
        return None
    return unquote(identifier)


def _issue(issue: dict) -> str:
    check = (issue.get("check") or {}).get("identifier", "?")
    entity = issue.get("violatingEntity")
    where = f" ({entity})" if entity else ""
    return f"{issue.get('severity')} {check}: {issue.get('message')}{where}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m inputspace.provenance.crate_check", description=__doc__
    )
    parser.add_argument("crate", nargs="?", type=Path, help="the crate's folder")
    parser.add_argument("--severity", choices=["required", "recommended", "optional"])
    parser.add_argument("--cache", type=Path, help="only write the offline cache here")
    args = parser.parse_args(argv)
    try:
        if args.cache:
            offline_cache(args.cache)
            print(
                f"rocrate-validator validate --offline --cache-path {args.cache} -p {PROFILE} CRATE"
            )
            return 0
        if args.crate is None:
            parser.error("name the crate's folder")
        return _report(args.crate, args.severity or "required")
    except InputspaceError as error:
        print(f"inputspace: {error}", file=sys.stderr)
        return 2


def _report(folder: Path, severity: str) -> int:
    problems = file_problems(folder)
    for line in problems:
        print(f"{folder}: {line}")
    if not problems:
        print(f"{folder}: every file listed is there, with the sha256 and size recorded")
    validation = validate(folder, severity)
    verdict = "valid" if validation.passed else "NOT valid"
    print(
        f"{folder}: {verdict} {PROFILE} at level {severity} (roc-validator: "
        f"{validation.checks - validation.failed} of {validation.checks} checks passed)"
    )
    for line in validation.issues:
        print(f"  {line}")
    return 0 if validation.passed and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
