"""The vocabulary as the model consumes it: a table and an embedding matrix."""

from pathlib import Path

import pandas as pd
import torch
from torch import Tensor

from inputspace.files import read_parquet, write_parquet
from inputspace.model.models import LanguageModel
from inputspace.tensors import read_tensors, write_tensors

MATRIX_KEY = "embeddings"


def vocabulary_table(lm: LanguageModel, matrix: Tensor) -> pd.DataFrame:
    """One row per embedding row: id, decoded string, BPE piece, special flags and norm.

    Rows past the tokenizer's size (padding rows some models carry) are kept but
    flagged `in_tokenizer=False`; analyses use only `is_regular` tokens.
    """
    n_rows = matrix.shape[0]
    n_known = min(len(lm.tokenizer), n_rows)
    known = range(n_known)
    tokens = lm.tokenizer.batch_decode([[i] for i in known]) + [""] * (n_rows - n_known)
    pieces = lm.tokenizer.convert_ids_to_tokens(list(known)) + [""] * (n_rows - n_known)
    special = set(lm.special_ids)
    table = pd.DataFrame(
        {
            "token_id": range(n_rows),
            "token": tokens,
            "piece": [str(p) for p in pieces],
            "is_special": [i in special for i in range(n_rows)],
            "in_tokenizer": [i < n_known for i in range(n_rows)],
            "norm": matrix.norm(dim=1).numpy(),
        }
    )
    table["is_regular"] = table.in_tokenizer & ~table.is_special
    return table


def write_vocabulary(
    table: pd.DataFrame, matrix: Tensor, table_path: Path, matrix_path: Path
) -> None:
    write_tensors({MATRIX_KEY: matrix}, matrix_path)
    write_parquet(table, table_path)


def read_matrix(path: Path) -> Tensor:
    return read_tensors(path)[MATRIX_KEY]


def read_table(path: Path) -> pd.DataFrame:
    return read_parquet(path)


def regular_ids(table: pd.DataFrame) -> torch.Tensor:
    return torch.tensor(table.token_id[table.is_regular].to_numpy())
