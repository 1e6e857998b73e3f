"""A prepared model folder's manifest.json: what prepare_model made it from and wrote.
Light on purpose (no torch): figure records read it too."""

import json
from pathlib import Path
from typing import Any

from inputspace.errors import InputspaceError

MANIFEST = "manifest.json"


def is_prepared(folder: Path) -> bool:
    return (Path(folder) / MANIFEST).is_file()


def read_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / MANIFEST
    if not path.is_file():
        raise InputspaceError(
            f"{folder} is not a prepared model folder (no {MANIFEST}); run prepare_model"
        )
    return json.loads(path.read_text())
