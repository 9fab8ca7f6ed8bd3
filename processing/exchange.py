"""Rows exchanged between the steps of a stage through files, by partition: one task writes its rows
split by the partition of a key, and the task of each partition reads what every writer sent it.

Files are `<base>/<name>/p=NNNN/<source>.parquet`: a rerun of a writer overwrites its own files with
the same bytes, and a partition's reader needs no listing of the writers. Memory per task is its own
rows, and a reader's one partition of the exchange: neither grows with the corpus when the number of
partitions does.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from core.storage import RunRoot
from processing.components import partition_of, split_by


def write(root: RunRoot, base: str, table: pa.Table, parts: np.ndarray, source: str) -> None:
    """Write the rows of `table` to the partitions `parts` gives (one per row); empty partitions
    get no file."""
    for part, rows in split_by(table, parts).items():
        root.write_parquet(f"{base}/p={part:04d}/{source}.parquet", rows)


def write_hashed(root: RunRoot, base: str, table: pa.Table, key: str, n: int, source: str) -> None:
    """Write the rows of `table` by the hash partition (0..n-1) of column `key`."""
    write(root, base, table, partition_of(table[key], n), source)


def read(root: RunRoot, base: str, part: int, schema: pa.Schema) -> pa.Table:
    """Every row sent to partition `part` (in writer order; empty when none was)."""
    return root.read_parquet(f"{base}/p={part:04d}", schema=schema).select(schema.names)
