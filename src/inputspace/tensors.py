"""Tensor files between rules as torch tensors: written all-or-nothing with a checksum in
their safetensors metadata, read back only whole and matching it (`inputspace.files`
holds the checksum and the torch-free reader of the same files)."""

import os

import torch
from safetensors.torch import save_file
from torch import Tensor

from inputspace.files import DIGEST_KEY, atomic_output, content_digest, read_checked


def tensor_digest(tensors: dict[str, Tensor]) -> str:
    """`files.content_digest` of torch tensors."""
    contents = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        raw = tensor.reshape(-1).view(torch.uint8).numpy()  # the bytes, not a copy
        contents[name] = (str(tensor.dtype), list(tensor.shape), raw)
    return content_digest(contents)


def write_tensors(tensors: dict[str, Tensor], path: str | os.PathLike) -> None:
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in tensors.items()}
    with atomic_output(path) as partial:
        save_file(tensors, str(partial), metadata={DIGEST_KEY: tensor_digest(tensors)})


def read_tensors(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a file `write_tensors` wrote; DamagedFile unless it reads back whole
    and matches its digest."""
    return read_checked(path, "pt", tensor_digest)
