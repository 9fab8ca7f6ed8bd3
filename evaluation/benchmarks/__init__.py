"""The benchmark loaders by name: each turns one raw data folder (../shared/data/bench_<name>) into MCQItems."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from evaluation.benchmarks import bigtom, emobench, hitom, motivebench, opentom, socialiqa, tombench, tomi
from evaluation.items import MCQItem

log = logging.getLogger(__name__)

_MODULES = (motivebench, tombench, socialiqa, emobench, hitom, opentom, bigtom, tomi)
BENCHMARKS: dict[str, Callable[[Path], list[MCQItem]]] = {m.NAME: m.load for m in _MODULES}
DEFAULT_FOLDERS: dict[str, str] = {name: f"bench_{name}" for name in BENCHMARKS}


def load_benchmark(name: str, data_dir: Path) -> list[MCQItem]:
    """The items of benchmark `name` from `data_dir / DEFAULT_FOLDERS[name]`."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {name!r}: choose one of {', '.join(BENCHMARKS)}")
    folder = Path(data_dir) / DEFAULT_FOLDERS[name]
    if not folder.is_dir():
        raise FileNotFoundError(f"benchmark {name!r}: data folder {folder} does not exist; put the raw files there "
                                f"or pass the data directory that holds {DEFAULT_FOLDERS[name]}/")
    try:
        items = BENCHMARKS[name](folder)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"benchmark {name!r}: {e.filename or e} is missing; restore the raw files of "
                                f"{folder} as listed in its SOURCE.md") from e
    log.info("%s: %d items from %s", name, len(items), folder)
    return items
