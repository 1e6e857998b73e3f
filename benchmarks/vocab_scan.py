"""Throughput of the chunked nearest-token scan against a whole vocabulary.

    .venv/bin/python benchmarks/vocab_scan.py [--vocab 49152] [--dim 576] [--queries 2048]

Prints queries/s and the scan's achieved GFLOP/s next to a plain fp32 matmul of the
same shapes on this machine (the scan's ceiling). Defaults are SmolLM2-135M's shapes.
"""

import argparse

import torch

from inputspace.geometry import nearest_tokens

from timing import best_of  # benchmarks/timing.py


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab", type=int, default=49152)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--queries", type=int, default=2048)
    parser.add_argument("--chunk-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(args.vocab, args.dim, generator=generator)
    queries = torch.randn(args.queries, args.dim, generator=generator)
    candidates = torch.arange(args.vocab)
    flops = 2 * args.queries * args.vocab * args.dim

    scan = best_of(args.repeats, lambda: nearest_tokens(queries, matrix, candidates, chunk_size=args.chunk_size))
    matmul = best_of(args.repeats, lambda: queries @ matrix.T)
    print(f"threads {torch.get_num_threads()}, vocab {args.vocab}, dim {args.dim}, queries {args.queries}")
    print(f"scan:   {scan:.3f} s  {args.queries / scan:,.0f} queries/s  {flops / scan / 1e9:.1f} GFLOP/s")
    print(f"matmul: {matmul:.3f} s  {flops / matmul / 1e9:.1f} GFLOP/s (ceiling)")
    print(f"scan reaches {matmul / scan:.0%} of the plain matmul")


if __name__ == "__main__":
    main()
