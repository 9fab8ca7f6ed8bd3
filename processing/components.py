"""Connected components of an edge list over hash partitions of its nodes, in rounds of bounded memory.

The alternating large-star / small-star algorithm (Kiveris et al., "Connected Components in MapReduce
and Beyond", SoCC 2014): each round is one task per partition, and a task holds only the directed edges
whose first node is in its partition (every neighbour of each of its nodes). Large-star links each
node's larger neighbours to the smallest node of its neighbourhood; small-star links each node and its
smaller neighbours to the smallest of them. The graph keeps its components and, within O(log^2 n)
rounds, becomes a forest of stars, each centred at the smallest node (string order) of its component:
then every node's label is the smaller of itself and its smallest neighbour. A task can tell from its
own nodes whether the graph it read is such a forest (`unsettled` counts the nodes that are neither a
centre nor a leaf of one), so the driver stops at the first round whose input has none.

A partition's edges are read in chunks: its nodes' neighbourhoods (a row per node) first, then each
chunk's output, so memory per task is one chunk plus a row per node of the partition, even for the
partition of a centre whose star spans a duplicate cluster that grows with the corpus.
"""
from __future__ import annotations

import math
from typing import Iterable

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from processing.string_hash import xxh64

U, V = "u", "v"
DIRECTED = pa.schema([pa.field(U, pa.string()), pa.field(V, pa.string())])  # keyed (partitioned) by u
LABELS = pa.schema([pa.field("member", pa.string()), pa.field("root", pa.string())])


def partition_of(ids: pa.Array | pa.ChunkedArray, n: int) -> np.ndarray:
    """The hash partition (0..n-1) of each id: its XXH64 modulo n."""
    if len(ids) == 0:
        return np.zeros(0, np.int64)
    return (xxh64(ids) % np.uint64(n)).astype(np.int64)


def local_stars(edges: pa.Table) -> pa.Table:
    """The components of one task's undirected edges (`a`, `b`) as stars: an edge from the smallest node
    of each component (string order) to each of its other nodes, sorted (a compiled union-find over the
    nodes' ranks). The same components with at most as many edges, and no paths: the rounds that join
    the tasks' stars start from stars (an exact group's chain of k copies would take ~log k rounds)."""
    if edges.num_rows == 0:
        return edges
    n = edges.num_rows
    nodes = pa.concat_arrays([edges["a"].combine_chunks(), edges["b"].combine_chunks()])
    names = pc.unique(nodes)
    names = names.take(pc.array_sort_indices(names))  # rank = position in string order
    ids = pc.index_in(nodes, names).to_numpy()
    root = _min_roots(ids[:n], ids[n:], len(names))
    leaf = np.flatnonzero(root != np.arange(len(names)))
    return pa.table({"a": names.take(pa.array(root[leaf])), "b": names.take(pa.array(leaf))}).sort_by(
        [("a", "ascending"), ("b", "ascending")])


@numba.njit(cache=True, nogil=True)
def _min_roots(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """The smallest node of each node's component (union by the smaller root, path halving)."""
    parent = np.arange(n)
    for i in range(len(a)):
        x, y = a[i], b[i]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x < y:
            parent[y] = x
        elif y < x:
            parent[x] = y
    for v in range(n):  # parents are smaller than their children: one pass in rank order settles every root
        parent[v] = parent[parent[v]]
    return parent


def directed(edges: pa.Table, a: str = "a", b: str = "b") -> pa.Table:
    """Both directed copies (u, v) and (v, u) of each undirected edge (a, b), without self loops."""
    e = edges.filter(pc.not_equal(edges[a], edges[b]))
    return pa.concat_tables([pa.table({U: e[a], V: e[b]}, schema=DIRECTED),
                             pa.table({U: e[b], V: e[a]}, schema=DIRECTED)])


def by_partition(table: pa.Table, column: str, n: int) -> dict[int, pa.Table]:
    """Rows split by the partition of `column` (directed edges: of their first node); non-empty parts only."""
    return split_by(table, partition_of(table[column], n))


def split_by(table: pa.Table, parts: np.ndarray) -> dict[int, pa.Table]:
    """Rows split by their partition in `parts` (one per row; row order kept); non-empty parts only."""
    order = np.argsort(parts, kind="stable")
    sorted_parts = parts[order]
    bounds = np.flatnonzero(np.diff(sorted_parts)) + 1
    out = {}
    for lo, hi in zip(np.concatenate([[0], bounds]), np.concatenate([bounds, [len(order)]])):
        if hi > lo:
            out[int(sorted_parts[lo])] = table.take(pa.array(order[lo:hi]))
    return out


def _neighbourhoods(edges: pa.Table) -> pa.Table:
    """Per node u: its smallest and largest neighbour (an edge may come more than once: min and max
    do not count)."""
    return edges.group_by(U).aggregate([(V, "min"), (V, "max")]).select([U, f"{V}_min", f"{V}_max"])


def neighbourhoods(chunks: Iterable[pa.Table], merge_rows: int = 1 << 16) -> pa.Table:
    """`_neighbourhoods` of the edges of all chunks, holding one chunk and one row per node at a time
    (partial results are merged whenever they outgrow the merged table and `merge_rows`)."""
    merged = pa.table({U: pa.array([], pa.string()), f"{V}_min": pa.array([], pa.string()),
                       f"{V}_max": pa.array([], pa.string())})
    pending: list[pa.Table] = []
    size = 0
    for chunk in chunks:
        pending.append(_neighbourhoods(chunk))
        size += pending[-1].num_rows
        if size > max(merged.num_rows, merge_rows):
            merged, pending, size = _merge(merged, pending), [], 0
    return _merge(merged, pending)


def _merge(merged: pa.Table, parts: list[pa.Table]) -> pa.Table:
    if not parts:
        return merged
    both = pa.concat_tables([merged, *parts])
    out = both.group_by(U).aggregate([(f"{V}_min", "min"), (f"{V}_max", "max")])
    return pa.table({U: out[U], f"{V}_min": out[f"{V}_min_min"], f"{V}_max": out[f"{V}_max_max"]})


def unsettled(hood: pa.Table) -> int:
    """How many nodes of `neighbourhoods` are neither a star centre nor a leaf of one centred at its
    smallest node (0 everywhere: the graph is a forest of such stars)."""
    lo_n, hi_n = hood[f"{V}_min"], hood[f"{V}_max"]
    leaf = pc.and_(pc.equal(lo_n, hi_n), pc.less(hi_n, hood[U]))  # one neighbour, and it is smaller
    return int(pc.sum(pc.and_(pc.less(lo_n, hood[U]), pc.invert(leaf))).as_py() or 0)


def star_edges(edges: pa.Table, hood: pa.Table, large: bool, own_nodes: bool) -> pa.Table:
    """A large-star (`large`) or small-star round's undirected edges (a < b, unique within this call) from
    one chunk of a partition's directed edges, given the partition's `neighbourhoods`. Small-star also
    links each node to its centre: with `own_nodes`, for every node of `hood` (once per partition)."""
    centre = pc.min_element_wise(hood[U], hood[f"{V}_min"])  # the smallest of u's closed neighbourhood
    m = pc.take(centre, pc.index_in(edges[U], hood[U]))
    pick = pc.greater(edges[V], edges[U]) if large else pc.less(edges[V], edges[U])
    if large:  # each larger neighbour v of u -> m(u)
        a, b = edges[V].filter(pick), m.filter(pick)
    else:  # u and each smaller neighbour v of u -> m(u)
        a, b = edges[V].filter(pick).combine_chunks(), m.filter(pick).combine_chunks()
        if own_nodes:
            a, b = pa.concat_arrays([a, hood[U].combine_chunks()]), pa.concat_arrays([b, centre.combine_chunks()])
    lo, hi = pc.min_element_wise(a, b), pc.max_element_wise(a, b)
    return pa.table({"a": lo, "b": hi}).filter(pc.not_equal(lo, hi)).group_by(["a", "b"]).aggregate([])


def star_round(edges: pa.Table, large: bool) -> tuple[pa.Table, int]:
    """One large-star (`large`) or small-star round over one partition's directed edges (every neighbour
    of each first node present; the same edge may come from two partitions' rounds). Returns the round's
    undirected edges (a < b, unique, in no particular order) and how many of the partition's nodes are
    neither a star centre nor a leaf (0 everywhere: the input is a forest of stars centred at their
    smallest nodes)."""
    hood = _neighbourhoods(edges)
    return star_edges(edges, hood, large, own_nodes=True), unsettled(hood)


def star_labels(hood: pa.Table) -> pa.Table:
    """Member -> component root for the nodes of one partition of a forest of stars (`unsettled` found
    none), from their `neighbourhoods`: the smaller of the node and its smallest neighbour."""
    return pa.table({"member": hood[U], "root": pc.min_element_wise(hood[U], hood[f"{V}_min"])}, schema=LABELS)


def round_bound(n_edges: int) -> int:
    """Rounds allowed before the components are declared stuck: large-star / small-star converges in
    O(log^2 n) rounds (Kiveris et al. 2014); in practice a few times log2 n."""
    return 2 + math.ceil(math.log2(n_edges + 2)) ** 2


def components(edges: pa.Table, n: int = 1) -> tuple[pa.Table, int]:
    """The rounds in this process over `n` partitions (undirected edges `a`, `b`): (member -> root labels,
    rounds). What the curate stage runs in one task when the run has one partition."""
    parts, k = by_partition(directed(edges), U, n), 0
    while True:
        if k >= round_bound(edges.num_rows):
            raise RuntimeError(f"connected components not settled after {k} rounds")
        outs, unsettled = [], 0
        for q in sorted(parts):
            out, u = star_round(parts[q], large=k % 2 == 0)
            outs.append(out)
            unsettled += u
        if not unsettled:
            break
        parts, k = by_partition(directed(pa.concat_tables(outs)), U, n), k + 1
    labels = [star_labels(_neighbourhoods(parts[q])) for q in sorted(parts)]
    return pa.concat_tables(labels or [LABELS.empty_table()]), k + 1
