"""Throughput of the chunked nearest-token scan against a whole vocabulary.

    .venv/bin/python benchmarks/vocab_scan.py [--vocab 49152] [--dim 576] [--queries 2048]
    .venv/bin/python benchmarks/vocab_scan.py --large

Prints queries/s and the scan's achieved GFLOP/s next to a plain fp32 matmul of the
same shapes on this machine (the scan's ceiling). Defaults are SmolLM2-135M's shapes.
`--large` times the whole `vocab_distances` rule on a synthetic 262,144 x 640
vocabulary (a Gemma-3-sized one, with 6,000 special tokens): random pairs and the
nearest neighbours of the default sample, against the 2-minute target.
"""

import argparse
import time

import numpy as np
import pandas as pd
import torch
from timing import best_of  # benchmarks/timing.py

from inputspace.analysis import geometry
from inputspace.analysis.geometry import nearest_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--large", action="store_true", help="time the vocab_distances rule at 262,144 x 640"
    )
    args = parser.parse_args()
    if args.large:
        large()
        return

    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(args.vocab, args.dim, generator=generator)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    candidates = torch.arange(args.vocab)
    flops = 2 * args.queries * args.vocab * args.dim

    scan = best_of(
        args.repeats,
        lambda: nearest_tokens(queries, matrix, candidates, chunk_size=args.chunk_size),
    )
    matmul = best_of(args.repeats, lambda: queries @ matrix.T)
    print(
        f"threads {torch.get_num_threads()}, vocab {args.vocab}, "
        f"dim {args.dim}, queries {args.queries}"
    )
    print(
        f"scan:   {scan:.3f} s  {args.queries / scan:,.0f} queries/s  "
        f"{flops / scan / 1e9:.1f} GFLOP/s"
    )
    print(f"matmul: {matmul:.3f} s  {flops / matmul / 1e9:.1f} GFLOP/s (ceiling)")
    print(f"scan reaches {matmul / scan:.0%} of the plain matmul")


def large(vocab: int = 262_144, dim: int = 640, specials: int = 6_000, sample: int = 8192) -> None:
    """The vocab_distances rule's work at a Gemma-3-sized vocabulary, from a synthetic matrix."""
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(vocab, dim, generator=generator) * 0.05
    special = np.zeros(vocab, dtype=bool)
    special[:specials] = True
    table = pd.DataFrame(
        {
            "token_id": np.arange(vocab),
            "token": [f"t{i}" for i in range(vocab)],
            "is_special": special,
            "is_regular": ~special,
        }
    )
    start = time.perf_counter()
    geometry.random_pair_table(matrix, table, 1000, generator)
    nearest = geometry.nearest_neighbour_table(matrix, table, sample, generator)
    took = time.perf_counter() - start
    print(
        f"threads {torch.get_num_threads()}, vocab {vocab:,} x {dim}, "
        f"{specials:,} special tokens excluded, "
        f"nearest neighbours of {len(nearest):,} sampled tokens"
    )
    print(
        f"vocab_distances work: {took:.1f} s (target: under 120 s)  "
        f"{'ok' if took < 120 else 'OVER'}"
    )


if __name__ == "__main__":
    main()
