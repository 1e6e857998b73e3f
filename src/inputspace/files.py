"""All-or-nothing file writes: a failed job never leaves a half-written output."""

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; move it onto `path` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    partial = final.with_name(final.name + ".partial")
    try:
        yield partial
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    with atomic_output(path) as partial:
        table.to_parquet(partial, index=False)


def write_json(data: Any, path: str | os.PathLike) -> None:
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(data, indent=2) + "\n")


def write_csv(table: pd.DataFrame, path: str | os.PathLike, sep: str = ",") -> None:
    with atomic_output(path) as partial:
        table.to_csv(partial, index=False, sep=sep)
