"""The Parquet schemas of an optimisation run, defined once for writers and readers.

steps.parquet   one row per (sequence, step): KL, travel, top-1 prediction, and whether
                the sequence was still optimised at that step (`active`: false once the
                stopping rule took it out of the batch; its rows then hold its frozen values)
tokens.parquet  one row per (sequence, optimised position, logged step): travel,
                back-projection, heading, and cosines toward the watch tokens
topk.parquet    one row per (sequence, logged step, rank): top-k prediction
"""

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from inputspace import files

RUN_METADATA = (
    b"inputspace.run"  # a run's device, precision, seed, ...: each table's schema metadata
)

STEPS = pa.schema(
    [
        ("model", pa.string()),
        ("experiment", pa.string()),
        ("seq", pa.int32()),
        ("step", pa.int32()),
        ("active", pa.bool_()),
        ("kl", pa.float32()),
        ("l2_total", pa.float32()),
        ("l2_max", pa.float32()),
        ("top1_id", pa.int32()),
        ("top1_prob", pa.float32()),
    ]
)

TOKENS = pa.schema(
    [
        ("model", pa.string()),
        ("experiment", pa.string()),
        ("seq", pa.int32()),
        ("pos", pa.int32()),
        ("step", pa.int32()),
        ("active", pa.bool_()),
        ("token_id", pa.int32()),  # original token, -1 for a sampled point
        ("l2", pa.float32()),
        ("nearest_euclidean_id", pa.int32()),
        ("nearest_euclidean", pa.float32()),
        ("nearest_cosine_id", pa.int32()),
        ("nearest_cosine", pa.float32()),
        ("heading_id", pa.int32()),  # vocab token the displacement points at most
        ("heading_cosine", pa.float32()),
        ("watch_ids", pa.list_(pa.int32())),
        ("watch_cosines", pa.list_(pa.float32())),
        ("watch_ranks", pa.list_(pa.int32())),  # 1 = the best heading of all tokens
    ]
)

TOPK = pa.schema(
    [
        ("model", pa.string()),
        ("experiment", pa.string()),
        ("seq", pa.int32()),
        ("step", pa.int32()),
        ("active", pa.bool_()),
        ("rank", pa.int32()),
        ("token_id", pa.int32()),
        ("prob", pa.float32()),
    ]
)


def write_columns(
    columns: dict[str, Any],
    schema: pa.Schema,
    path: str | Path,
    metadata: dict[bytes, bytes] | None = None,
) -> None:
    """Write columns (lists or arrays, plus scalars broadcast to every row) with `schema`,
    and `metadata` in the file's schema metadata."""
    lengths = {len(v) for v in columns.values() if not isinstance(v, str)}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {lengths}")
    n_rows = lengths.pop() if lengths else 0
    full = {k: [v] * n_rows if isinstance(v, str) else v for k, v in columns.items()}
    missing = set(schema.names) - set(full)
    if missing:
        raise ValueError(f"missing columns {sorted(missing)}")
    table = pa.table(
        {name: pa.array(full[name], type=schema.field(name).type) for name in schema.names}
    )
    if metadata:
        table = table.replace_schema_metadata(metadata)
    files.write_table(table, path)


def read(path: str | Path, schema: pa.Schema) -> pd.DataFrame:
    return files.read_table(path, schema).to_pandas()


def read_run_info(path: str | Path) -> dict:
    """What `write_run` put in a run table's Parquet metadata (device, seed, step size...)."""
    metadata = pq.read_schema(path).metadata or {}
    return json.loads(metadata[RUN_METADATA]) if RUN_METADATA in metadata else {}
