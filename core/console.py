"""The console of the pipeline: what a person reads while a stage runs, and where everything else goes.

The terminal shows the project's own log lines (one line per stage start and end, the funnel, the
synthesis cost table, the SFT card, the training curve, the report path), a progress bar per long
step and a final summary table. Everything else (Ray, Ray Data, vLLM, DeepSpeed, worker output
streamed to the driver, C++ logs, Python warnings, stray progress bars) goes to `<log_dir>/driver.log`:
once a run's log folder is known, the process's stdout and stderr (file descriptors 1 and 2) point
to that file and the terminal keeps a private handle. `verbose` leaves the streams alone.

A real failure still reaches the terminal: uncaught exceptions are printed there (and in the log).
"""
from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable, Iterator, Protocol

from core.layout import RunLayout

log = logging.getLogger("humanllm")

# Top-level packages whose log records are the pipeline's story (shown on the terminal).
PROJECT = ("humanllm", "core", "llm", "processing", "synthesis", "sft", "train", "evaluation", "ray_jobs", "__main__")
LOG_FILE = RunLayout.DRIVER_LOG
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
NON_TTY_INTERVAL_S = 30.0  # a progress line at most this often where the terminal is a file or a pipe


def fmt_seconds(seconds: float) -> str:
    """`42s`, `3m05s`, `1h02m`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


class _ProjectFilter(logging.Filter):
    """The terminal's filter: the project's records at INFO and above, anyone's errors. While a
    progress bar runs, the bar is the step's line: per-shard details go to the log file only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING or getattr(record, "progress", False):
            return record.name.split(".", 1)[0] in PROJECT or record.levelno >= logging.ERROR
        return record.name.split(".", 1)[0] in PROJECT and not _state.bars


class _TerminalFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if record.levelno >= logging.WARNING:
            stamp, _, rest = text.partition(" ")
            text = f"{stamp} {record.levelname}: {rest}"
        return text


class _TerminalHandler(logging.StreamHandler):
    """Writes through tqdm where a bar may be on screen, so log lines do not tear it."""

    def emit(self, record: logging.LogRecord) -> None:
        if _state.tqdm is None:
            return super().emit(record)
        try:
            _state.tqdm.write(self.format(record), file=self.stream)
        except Exception:  # noqa: BLE001  (logging's own contract: never raise from emit)
            self.handleError(record)


@dataclass
class StageRecord:
    """One row of the summary table."""

    name: str
    seconds: float
    rows_in: int | None = None
    rows_out: int | None = None
    output: str = ""
    ok: bool = True


@dataclass
class _State:
    verbose: bool = False
    terminal: IO[str] | None = None        # the terminal's stream (a private duplicate once redirected)
    handler: logging.Handler | None = None
    file_handler: logging.Handler | None = None
    log_dir: str | None = None
    saved_fds: tuple[int, int] | None = None
    saved_streams: tuple = ()
    tqdm: object = None
    bars: int = 0                          # progress bars running
    stages: list[StageRecord] = field(default_factory=list)


_state = _State()


def terminal() -> IO[str]:
    """The stream the person reads (stderr before any redirection)."""
    return _state.terminal or sys.stderr


def setup_console(log_dir: str | None = None, verbose: bool = False) -> str | None:
    """Terminal logging for the driver; with `log_dir`, everything else goes to `<log_dir>/driver.log`.

    Call it once at start-up without `log_dir`, and again when the run root is known; it is
    idempotent. Returns the log file's path (None before a log folder is set).
    """
    _state.verbose = _state.verbose or verbose
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    if _state.handler is None:
        _state.terminal = sys.stderr
        _state.handler = _TerminalHandler(_state.terminal)
        _state.handler.setFormatter(logging.Formatter(FILE_FORMAT, datefmt="%H:%M:%S") if _state.verbose
                                    else _TerminalFormatter())
        if not _state.verbose:
            _state.handler.addFilter(_ProjectFilter())
            try:
                import tqdm

                _state.tqdm = tqdm.tqdm if _state.terminal.isatty() else None
            except ImportError:
                pass
        logging.captureWarnings(True)
    if log_dir and _state.log_dir != log_dir:
        _open_log_file(log_dir)
    reclaim_root()
    return os.path.join(_state.log_dir, LOG_FILE) if _state.log_dir else None


def _open_log_file(log_dir: str) -> None:
    os.makedirs(log_dir, exist_ok=True)
    path = os.path.join(log_dir, LOG_FILE)
    stream = open(path, "a", buffering=1, encoding="utf-8")
    stream.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(sys.argv)} (pid {os.getpid()})\n")
    if not _state.verbose:
        if _state.saved_fds is None:  # keep the terminal on a private duplicate of stderr
            _state.saved_fds = (os.dup(1), os.dup(2))
            _state.saved_streams = (sys.stdout, sys.stderr)
            _state.terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
            _state.handler.setStream(_state.terminal)
            sys.excepthook = _excepthook
            threading.excepthook = lambda a: _excepthook(a.exc_type, a.exc_value, a.exc_traceback)
        for stdfd in (1, 2):
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(stream.fileno(), stdfd)
        sys.stdout = sys.stderr = stream
    if _state.file_handler is not None:
        logging.getLogger().removeHandler(_state.file_handler)
        _state.file_handler.close()
    _state.file_handler = logging.StreamHandler(stream)
    _state.file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
    _state.log_dir = log_dir


def reclaim_root() -> None:
    """Keep only the console's handlers on the root logger (Ray's LoggingConfig adds its own at init)."""
    root = logging.getLogger()
    ours = [h for h in (_state.handler, _state.file_handler) if h is not None]
    for h in list(root.handlers):
        if h not in ours:
            root.removeHandler(h)
    for h in ours:
        if h not in root.handlers:
            root.addHandler(h)


def _excepthook(exc_type, exc, tb) -> None:
    """An uncaught exception is printed on the terminal and in the log."""
    text = "".join(traceback.format_exception(exc_type, exc, tb))
    for stream in {id(s): s for s in (terminal(), sys.stderr)}.values():
        try:
            stream.write(text)
            stream.flush()
        except (OSError, ValueError):
            pass


def show_exception(exc: BaseException) -> None:
    """Print a caught exception's traceback where a person sees it."""
    _excepthook(type(exc), exc, exc.__traceback__)


def close_console() -> None:
    """Give the process its streams back and drop the console's handlers (tests call `main` in-process)."""
    root = logging.getLogger()
    for h in (_state.handler, _state.file_handler):
        if h is not None:
            root.removeHandler(h)
    if _state.saved_fds is not None:
        sys.stdout.flush(), sys.stderr.flush()
        for stdfd, saved in zip((1, 2), _state.saved_fds):
            os.dup2(saved, stdfd)
            os.close(saved)
        sys.stdout, sys.stderr = _state.saved_streams
        sys.excepthook, threading.excepthook = sys.__excepthook__, threading.__excepthook__
        _state.terminal.close()
    if _state.file_handler is not None:
        _state.file_handler.close()
    logging.captureWarnings(False)
    globals()["_state"] = _State()


def quiet_ray_data() -> None:
    """Ray Data's progress tables off on the driver (the console's bars replace them)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False


@contextmanager
def stage(name: str, output: str = "") -> Iterator[StageRecord]:
    """Time one stage: a start line, an end line, and a row of the summary table (filled by the caller)."""
    record = StageRecord(name, 0.0, output=output)
    log.info("=== %s: start", name)
    t0 = time.perf_counter()
    try:
        yield record
    except BaseException:
        record.ok = False
        raise
    finally:
        record.seconds = time.perf_counter() - t0
        _state.stages.append(record)
        log.info("=== %s: %s in %s", name, "done" if record.ok else "FAILED", fmt_seconds(record.seconds))


def stages() -> list[StageRecord]:
    return list(_state.stages)


def summary_table(rows: list[StageRecord], log_file: str | None = None) -> str:
    """Stage, wall time, rows in/out and where the output is, as fixed-width text."""
    def num(v: int | None) -> str:
        return "-" if v is None else str(v)

    width = max([5, *(len(r.name) for r in rows)])
    lines = [f"{'stage':<{width}} {'wall':>7} {'rows in':>9} {'rows out':>9}  output"]
    for r in rows:
        lines.append(f"{r.name:<{width}} {fmt_seconds(r.seconds):>7} {num(r.rows_in):>9} {num(r.rows_out):>9}  "
                     f"{r.output if r.ok else 'FAILED'}")
    lines.append(f"{'total':<{width}} {fmt_seconds(sum(r.seconds for r in rows)):>7}")
    if log_file:
        lines.append(f"logs (Ray, Ray Data, vLLM, DeepSpeed): {log_file}")
    return "\n".join(lines)


class Bar(Protocol):
    """What a step holds while it runs: `update(n)` as work completes; `n` done so far."""

    n: int

    def update(self, n: int = 1) -> None: ...


class _LogBar:
    """A progress bar as log lines: at most one every `interval` seconds, and one at the end."""

    def __init__(self, total: int | None, desc: str, unit: str, interval: float):
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n, self.t0, self.last = 0, time.perf_counter(), time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval and (self.total is None or self.n < self.total):
            self.last = now
            log.info("%s", self.line(), extra={"progress": True})

    def line(self) -> str:
        secs = time.perf_counter() - self.t0
        rate = self.n / secs if secs > 0 else 0.0
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        pct = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        eta = (f", ETA {fmt_seconds((self.total - self.n) / rate)}" if self.total and rate and self.n < self.total
               else "")
        speed = (f"{rate:.2f} {self.unit}/s" if rate >= 0.5 or not rate
                 else f"{fmt_seconds(1 / rate)}/{self.unit.removesuffix('s')}")
        return f"{self.desc}: {done} {self.unit}{pct}, {speed}, {fmt_seconds(secs)}{eta}"

    def close(self) -> None:
        log.info("%s", self.line(), extra={"progress": True})


class _TqdmBar:
    def __init__(self, total: int | None, desc: str, unit: str):
        try:
            width = os.get_terminal_size(terminal().fileno()).columns
        except OSError:
            width = 0
        self.bar = _state.tqdm(total=total, desc=desc, unit=unit, file=terminal(), leave=True,
                               ncols=min(width, 120) or 100, smoothing=0.1)

    @property
    def n(self) -> int:
        return self.bar.n

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()


@contextmanager
def progress(total: int | None, desc: str, unit: str = "rows") -> Iterator[Bar]:
    """A progress bar for a long step: done of total, rate and ETA (tqdm on a terminal, log lines
    elsewhere). In verbose mode, or with nothing to do, it is a plain counter that logs its end."""
    if _state.tqdm is not None and not _state.verbose:
        bar: _LogBar | _TqdmBar = _TqdmBar(total, desc, unit)
    else:
        bar = _LogBar(total, desc, unit, NON_TTY_INTERVAL_S)
    _state.bars += 1
    try:
        yield bar
    finally:
        _state.bars -= 1
        bar.close()


@contextmanager
def poll_progress(bar: Bar, count: Callable[[], int], interval: float = 2.0) -> Iterator[None]:
    """Move `bar` to `count()` every `interval` seconds while the block runs (for work that runs
    elsewhere and leaves a countable trace, like the steps a training worker appends to a file)."""
    stop = threading.Event()

    def poll() -> None:
        while True:
            done = stop.wait(interval)
            n = count()
            if n > bar.n:
                bar.update(n - bar.n)
            if done:
                return

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def format_table(rows: list[dict], columns: list[str]) -> str:
    """Rows of numbers as a fixed-width table (floats to 4 significant digits, missing as `-`)."""
    def cell(v) -> str:
        if v is None:
            return "-"
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    cells = [[cell(r.get(c)) for c in columns] for r in rows]
    widths = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    lines = [" ".join(f"{c:>{w}}" for c, w in zip(columns, widths))]
    lines += [" ".join(f"{v:>{w}}" for v, w in zip(row, widths)) for row in cells]
    return "\n".join(lines)
