"""ParquetShardWriter rolls over to a new file every `max_row_groups` row groups (a writer holds every row
group's metadata until it closes its file), and the files read back as the rows written, in order."""
from __future__ import annotations

import pyarrow as pa

from core.storage import ParquetShardWriter, RunRoot


def test_the_writer_rolls_over_and_reads_back_in_order(tmp_path):
    root = RunRoot(str(tmp_path))
    schema = pa.schema([pa.field("i", pa.int64()), pa.field("s", pa.string())])
    w = ParquetShardWriter(root, "out/p=0001/shard-a.parquet", schema, max_row_groups=3)
    for k in range(10):
        w.write(pa.table({"i": [2 * k, 2 * k + 1], "s": [f"r{2 * k}", f"r{2 * k + 1}"]}))
    w.close()
    assert root.list("out/p=0001") == ["out/p=0001/shard-a-0001.parquet", "out/p=0001/shard-a-0002.parquet",
                                       "out/p=0001/shard-a-0003.parquet", "out/p=0001/shard-a.parquet"]
    back = root.read_parquet("out/p=0001", schema=schema)
    assert sorted(back["i"].to_pylist()) == list(range(20)) and w.rows == 20
    assert [t.num_rows for t in root.iter_parquet("out/p=0001/shard-a.parquet", schema, batch_rows=4)] == [4, 2]
    # small files are joined (files of 6, 6, 2 and 6 rows): the count of tables follows the rows, not the files
    assert [t.num_rows for t in root.iter_parquet("out/p=0001", schema, batch_rows=8)] == [6, 8, 6]


def test_an_aborted_writer_leaves_no_file(tmp_path):
    root = RunRoot(str(tmp_path))
    schema = pa.schema([pa.field("i", pa.int64())])
    w = ParquetShardWriter(root, "out/x.parquet", schema)
    w.write(pa.table({"i": [1, 2]}))
    w.abort()
    assert root.list("out") == []


def test_a_codec_per_column(tmp_path):
    import pyarrow.parquet as pq

    root = RunRoot(str(tmp_path))
    schema = pa.schema([pa.field("i", pa.int64()), pa.field("b", pa.binary(4))])
    w = ParquetShardWriter(root, "c.parquet", schema, compression={"i": "zstd", "b": "lz4"})
    w.write(pa.table({"i": [1, 2], "b": pa.array([b"abcd", b"efgh"], pa.binary(4))}))
    w.close()
    meta = pq.ParquetFile(root.path("c.parquet")).metadata.row_group(0)
    assert [meta.column(k).compression for k in range(2)] == ["ZSTD", "LZ4"]
    assert root.read_parquet("c.parquet")["b"].to_pylist() == [b"abcd", b"efgh"]


def test_read_where_equals_a_dataset_isin_filter(tmp_path):
    import pyarrow.compute as pc

    root = RunRoot(str(tmp_path))
    schema = pa.schema([pa.field("id", pa.string()), pa.field("v", pa.int64())])
    for k in range(3):
        root.write_parquet(f"t/{k}.parquet", pa.table({"id": [f"e{i}" if i % 7 else None for i in range(k * 50, k * 50 + 60)],
                                                      "v": list(range(60))}, schema=schema))
    for values in (pa.array(["e3", "e120", "e55", "e56", "nope"]), pa.array(["e1", None]), pa.array([], pa.string())):
        want = root.read_parquet("t", schema=schema, filters=pc.field("id").isin(values))
        assert root.read_where("t", schema, "id", values, batch_rows=16).equals(want)
        assert root.read_where("t", schema, "id", pa.chunked_array([values]), columns=["v"]).equals(want.select(["v"]))
    assert root.read_where("missing", schema, "id", pa.array(["e1"])).num_rows == 0
