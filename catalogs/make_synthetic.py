"""Write a seeded synthetic survey as Parquet files (input for ingest, tests and benchmarks).

    python catalogs/make_synthetic.py --rows 10000000 --files 4 --out bench-data/input

The sky is non-uniform (uniform background, a tilted band, compact clusters), so adaptive
partitioning produces several orders. The same arguments always give the same rows.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from proxcompute.synthetic import write_synthetic


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    for p in write_synthetic(args.rows, args.files, args.out, args.seed):
        print(p)


if __name__ == "__main__":
    main()
