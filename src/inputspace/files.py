"""All-or-nothing file writes and checked reads.

A failed job never leaves a half-written output, and a write that fails (a full disk)
names the path. Tensors and tables carry checksums (a digest in the safetensors
metadata, Parquet page checksums) that every read verifies, so a truncated or damaged
intermediate file stops the rule that reads it with one line naming the file, never a
figure drawn from garbage.

Nothing here imports torch: figure and table jobs read tensor files as numpy arrays
(`read_arrays`); `inputspace.tensors` writes and reads them as torch tensors, with the
same checksum (`content_digest`).
"""

import contextlib
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError, safe_open

from inputspace.errors import DamagedFile, WriteFailed, first_line

DIGEST_KEY = "inputspace.sha256"


def damaged(path: str | os.PathLike, why: object) -> DamagedFile:
    return DamagedFile(
        f"{path} is damaged or incomplete ({first_line(why)}); delete it and rerun snakemake, "
        "which builds it again"
    )


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; move it onto `path` only if the block succeeds."""
    final = Path(path)
    partial = partial_of(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        yield partial
        os.replace(partial, final)
    except OSError as error:
        raise WriteFailed(
            f"could not write {final} ({error.strerror or error}); free disk space or fix "
            "permissions, then rerun"
        ) from error
    finally:
        partial.unlink(missing_ok=True)


def partial_of(path: str | os.PathLike) -> Path:
    """Where `atomic_output` writes `path` until the write succeeds."""
    return Path(path).with_name(Path(path).name + ".partial")


# ------------------------------------------------------------------ tensors


def content_digest(contents: dict[str, tuple[str, list[int], np.ndarray]]) -> str:
    """The checksum a tensor file carries: sha256 over each tensor's name, dtype (as torch
    spells it, e.g. `torch.float32`), shape and bytes (a flat uint8 array), in name order."""
    digest = hashlib.sha256()
    for name in sorted(contents):
        dtype, shape, raw = contents[name]
        digest.update(f"{name}:{dtype}:{shape};".encode())
        digest.update(raw)
    return digest.hexdigest()


def array_digest(arrays: dict[str, np.ndarray]) -> str:
    """`content_digest` of numpy arrays: the same value as of the equal torch tensors."""
    contents = {}
    for name, array in arrays.items():
        flat = np.ascontiguousarray(array).reshape(-1)
        contents[name] = (f"torch.{array.dtype.name}", list(array.shape), flat.view(np.uint8))
    return content_digest(contents)


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The tensors of a file `tensors.write_tensors` wrote, as numpy arrays (without
    torch); DamagedFile unless it reads back whole and matches its digest."""
    return read_checked(path, "numpy", array_digest)


def read_checked(
    path: str | os.PathLike, framework: str, digest: Callable[[dict[str, Any]], str]
) -> dict[str, Any]:
    """The tensors of a tensor file as `framework` (safetensors' "numpy" or "pt") holds
    them; DamagedFile unless the file reads back whole and `digest` of its tensors is the
    checksum written with it."""
    try:
        with safe_open(str(path), framework=framework) as stream:
            written = (stream.metadata() or {}).get(DIGEST_KEY)
            tensors = {name: stream.get_tensor(name) for name in stream.keys()}
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as error:
        raise damaged(path, error) from None
    if written != digest(tensors):
        raise damaged(path, "its content does not match the checksum written with it")
    return tensors


# ------------------------------------------------------------------ tables


def write_table(table: pa.Table, path: str | os.PathLike) -> None:
    with atomic_output(path) as partial:
        pq.write_table(table, partial, write_page_checksum=True)


def write_parquet(table: pd.DataFrame, path: str | os.PathLike) -> None:
    write_table(pa.Table.from_pandas(table, preserve_index=False), path)


def read_table(path: str | os.PathLike, schema: pa.Schema | None = None) -> pa.Table:
    """A Parquet file with its page checksums verified; DamagedFile if it does not read."""
    try:
        return pq.read_table(path, schema=schema, page_checksum_verification=True)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise damaged(path, error) from None


def read_parquet(path: str | os.PathLike) -> pd.DataFrame:
    return read_table(path).to_pandas()


def write_json(data: Any, path: str | os.PathLike) -> None:
    with atomic_output(path) as partial:
        partial.write_text(json.dumps(data, indent=2) + "\n")


def write_csv(table: pd.DataFrame, path: str | os.PathLike, sep: str = ",") -> None:
    with atomic_output(path) as partial:
        table.to_csv(partial, index=False, sep=sep)
