"""Run one benchmark arm in a fresh spawned process, so each arm's memory and threads are its own."""
from __future__ import annotations

import logging
import multiprocessing as mp
import queue

log = logging.getLogger(__name__)


def child(target, *args) -> dict:
    """Run target(*args) in a fresh spawned process; its result (a dict), or {"error": ...}."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_guard, args=(target, args, q))
    p.start()
    while True:
        try:
            out = q.get(timeout=5)
            break
        except queue.Empty:
            if not p.is_alive():  # died before reporting (a crash, or an import error in the child)
                out = {"error": f"the child process exited with code {p.exitcode} before reporting"}
                break
    p.join()
    if "error" in out:
        log.error("%s failed: %s", target.__name__, out["error"])
    return out


def _guard(target, args, q) -> None:
    try:
        q.put(target(*args))
    except BaseException as exc:  # noqa: BLE001 - reported to the parent
        import traceback

        q.put({"error": f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"})
