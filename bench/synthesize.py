"""Synthesis engine benchmark: the bare vLLM engine against our Ray pipeline, and prefix reuse per user.

Requests: deterministic synthetic Reddit users, each with a post history (built by
`synthesis.requests.history_block` to --history-tokens) and --requests-per-user post-level
`sqa_general` requests whose prompts all start with that history (the real prompt files, rendered
with the model's chat template by `Renderer`, rows made by `to_table`: seeds and sampling as in a run).

  bare      one process: `vllm.LLM(...)` with the engine kwargs the pipeline uses on CPU (float32,
            eager, prefix caching, chunked prefill off, max_num_batched_tokens = max_model_len,
            mp executor, VLLM_CPU_KVCACHE_SPACE); after a short warm-up and a prefix-cache reset,
            `llm.generate(all prompts)` is timed alone. Engine start is reported apart.
  pipeline  the same rows as a Ray Dataset (one block per --shards) through `llm.engines.generate`
            (EngineConfig backend vllm: the stage's engine on Ray Serve LLM, reached by ray.data.llm's
            ServeDeploymentProcessorConfig) on an embedded cluster, consumed with iter_batches. `e2e`
            runs from the engine start to the last row; `after engine up` from the moment the Serve
            application was RUNNING to the last row: the pipeline's steady state, to compare with the
            bare engine's warm generate.
  prefix    from the bare run (requests in the pipeline's order, user by user): computed prompt tokens
            = prompt tokens - `RequestOutput.num_cached_tokens`, per user; "no reuse" is every prompt
            token (what enable_prefix_caching=False computes). --interleaved adds a prefill-only pass
            (max_tokens 1) on the same engine after a prefix-cache reset with the requests round robin
            across users: it misses only where the users' prefixes outgrow the KV cache.

Targets (the issue): pipeline (after engine up) >= 95% of bare-engine generated tokens/s on a run long enough to
amortise start-up; grouping cuts computed prompt tokens per user >= 3x against no reuse.

vLLM's CPU build binds its worker to core 0 on every engine (VLLM_CPU_OMP_THREADS_BIND=auto reserves
the other core): run this on an otherwise idle machine, another vLLM job shares that core.

Usage: python bench/synthesize.py [--users 3 --requests-per-user 12 --max-tokens 64] [--tiny] [--interleaved]
                                  [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import pyarrow as pa  # noqa: E402
from subprocess_run import child  # noqa: E402

from core import schema as S  # noqa: E402

if TYPE_CHECKING:
    from vllm import SamplingParams

    from llm.settings import EngineConfig

log = logging.getLogger("bench.synthesize")

KIND = "sqa_general"
PLATFORM = S.REDDIT
SUBREDDITS = ("cooking", "running", "homeimprovement", "books", "personalfinance", "gardening", "cycling", "jobs")
PEOPLE = ("my sister", "my neighbour", "a coworker", "my landlord", "my best friend", "my dad", "the new manager",
          "an old classmate", "my partner", "the kid next door")
PLACES = ("at the farmers market", "on the night bus", "in the break room", "at the trailhead", "in the garage",
          "at my parents' place", "in the hospital waiting room", "at the hardware store", "by the river")
EVENTS = ("the boiler broke again", "I finally ran ten kilometres without stopping", "my offer letter arrived",
          "the tomato seedlings died overnight", "we argued about the budget", "the bike chain snapped",
          "I burnt the bread for the third time", "the interview ran two hours late", "the rent went up",
          "a package went missing", "I signed up for a pottery class", "the dog learned to open the fridge")
FEELINGS = ("I was furious at first but it passed", "honestly it made my week", "I still cannot decide how I feel",
            "I laughed so hard I cried", "it left me anxious all evening", "I felt oddly calm about it",
            "I am proud of myself for once", "it was embarrassing more than anything")
AFTER = ("Next week I will try again with a different plan.", "I asked around and nobody had a better idea.",
         "Any advice is welcome, I am out of options.", "I wrote down what went wrong so I remember it.",
         "We agreed to talk about it on Sunday.", "I ordered a replacement part and it should come Friday.",
         "I am thinking about quitting the whole thing.", "Tomorrow I will call the company and complain.")
TITLES = ("Long day, need to vent", "Small win today", "Is this normal?", "Update on last week's mess",
          "Advice needed", "Something funny happened", "First time trying this", "Not sure what to do next")


# ----------------------------------------------------------------------------- requests

def synthetic_users(n_users: int, min_posts: int, seed: int) -> list[list[dict]]:
    """Users as lists of event rows (time-ordered Reddit submissions), the same for the same seed."""
    rng = random.Random(seed)
    users = []
    for u in range(n_users):
        t = datetime(2023, 1, 1, tzinfo=timezone.utc) + timedelta(days=rng.randrange(365))
        rows = []
        for p in range(max(min_posts, rng.randint(20, 40))):
            t += timedelta(hours=rng.randint(5, 200))
            sentences = [f"Today {rng.choice(PLACES)} {rng.choice(EVENTS)}.",
                         f"{rng.choice(PEOPLE).capitalize()} was there and said {rng.choice(FEELINGS)}.",
                         *(f"Later {rng.choice(EVENTS)}, and {rng.choice(FEELINGS)}."
                           for _ in range(rng.randint(1, 3))),
                         rng.choice(AFTER)]
            rows.append({S.USER_ID: f"user{u:04d}", S.EVENT_ID: f"u{u:04d}p{p:03d}", S.PLATFORM: PLATFORM,
                         S.KIND: S.SUBMISSION, S.TS: t, S.TITLE: rng.choice(TITLES), S.TEXT: " ".join(sentences),
                         S.CONTEXT: json.dumps({"subreddit": rng.choice(SUBREDDITS)})})
        users.append(rows)
    return users


def build_requests(model_dir: str, n_users: int, per_user: int, history_tokens: int, max_tokens: int,
                   temperature: float, seed: int, max_model_len: int) -> pa.Table:
    """Request rows (REQUEST_SCHEMA), user by user: every prompt of a user starts with that user's history."""
    from llm.render import Renderer
    from llm.settings import EngineConfig
    from synthesis.prompts import build_messages, load_spec
    from synthesis.requests import date_of, history_block, post_text, Request, to_table
    from synthesis.settings import SynthesisConfig

    renderer = Renderer(model_dir)
    spec = load_spec(KIND)
    requests = []
    for rows in synthetic_users(n_users, per_user, seed):
        history = history_block(PLATFORM, rows, [r[S.TEXT] for r in rows], history_tokens, renderer, per_post=256)
        for i, row in enumerate(rows[-per_user:]):
            msgs = build_messages(spec, history=history, platform=PLATFORM, date=date_of(row), post=post_text(row))
            requests.append(Request(KIND, row[S.EVENT_ID], row[S.USER_ID], PLATFORM, i, msgs, max_tokens))
    table = to_table(requests, "bench", renderer, SynthesisConfig(seed=seed),
                     EngineConfig(model=model_dir, temperature=temperature))
    longest = max(renderer.count(p) for p in table[S.PROMPT].to_pylist())
    if longest + max_tokens > max_model_len:
        raise SystemExit(f"the longest prompt ({longest} tokens) + max_tokens exceeds --max-model-len {max_model_len}")
    return table


def interleaved(users: list[str]) -> list[int]:
    """Request indices round robin across users (the i-th request of every user, then the (i+1)-th ...)."""
    seen: dict[str, int] = {}
    rank = []
    for i, u in enumerate(users):
        rank.append((seen.get(u, 0), i))
        seen[u] = seen.get(u, 0) + 1
    return [i for _, i in sorted(rank)]


def engine_kwargs(args: argparse.Namespace) -> dict:
    """The vLLM kwargs `synthesis.engines` uses on CPU, plus the pinned max_num_seqs (both arms)."""
    return {"dtype": "float32", "max_model_len": args.max_model_len, "enforce_eager": True,
            "enable_prefix_caching": True, "enable_chunked_prefill": False,
            "max_num_batched_tokens": args.max_model_len,
            "distributed_executor_backend": "mp", "max_num_seqs": args.max_num_seqs}


# ----------------------------------------------------------------------------- arm A: bare engine

def sampling_params(sampling: dict, structured: bool) -> SamplingParams:
    """A vLLM SamplingParams from our stored sampling JSON, built as the ray.data.llm engine stage builds it."""
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    from llm.engines import vllm_sampling

    kwargs = vllm_sampling(sampling, structured)
    constraint = kwargs.pop("structured_outputs", None)
    return SamplingParams(**kwargs, structured_outputs=StructuredOutputsParams(**constraint) if constraint else None)


def run_bare(model_dir: str, kwargs: dict, kv_gib: int, prompts: list[str], sampling: list[dict], structured: bool,
             order: list[int] | None) -> dict:
    """Child process: engine start, warm-up, timed generate in request order, then (with `order`) a
    prefill-only pass in that order on the same engine for its prefix-cache hits."""
    os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(kv_gib)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from vllm import LLM

    t0 = time.perf_counter()
    llm = LLM(model=model_dir, **kwargs)
    start_s = time.perf_counter() - t0
    try:
        params = [sampling_params(s, structured) for s in sampling]
        # Warm-up on a short prompt with the first request's sampling (its structured-output grammar compiles).
        llm.generate(["Hello."], sampling_params({**sampling[0], "max_tokens": 4}, structured), use_tqdm=False)
        llm.reset_prefix_cache()
        log.info("bare: engine started in %.1f s; timing generate on %d prompts ...", start_s, len(prompts))
        t0 = time.perf_counter()
        outs = llm.generate(prompts, params, use_tqdm=False)
        gen_s = time.perf_counter() - t0
        log.info("bare: generate took %.1f s", gen_s)
        cached_inter = None
        if order is not None:
            log.info("bare: interleaved prefill-only pass ...")
            llm.reset_prefix_cache()
            inter = llm.generate([prompts[i] for i in order],
                                 [sampling_params({**sampling[i], "max_tokens": 1}, structured) for i in order],
                                 use_tqdm=False)
            cached_inter = [0] * len(prompts)
            for i, o in zip(order, inter):
                cached_inter[i] = o.num_cached_tokens or 0
        cache = llm.llm_engine.vllm_config.cache_config
        return {"start_s": start_s, "gen_s": gen_s,
                "prompt_tokens": [len(o.prompt_token_ids) for o in outs],
                "completion_tokens": [len(o.outputs[0].token_ids) for o in outs],
                "cached_grouped": [o.num_cached_tokens or 0 for o in outs], "cached_interleaved": cached_inter,
                "block_size": cache.block_size, "kv_tokens": (cache.num_gpu_blocks or 0) * cache.block_size}
    finally:  # else the process waits forever at exit on the engine core it started
        llm.llm_engine.engine_core.shutdown()


# ----------------------------------------------------------------------------- arm B: our pipeline

def run_pipeline(table: pa.Table, cfg: EngineConfig, shards: int) -> dict:
    """One execution of `llm.engines.generate` over `table` (split into `shards` blocks) on the stage's
    served engine: wall from the engine start to the last row, when the engine was up, first rows, tokens."""
    import pyarrow.compute as pc
    import ray.data

    from llm.engines import generate
    from llm.serving import EngineSet

    step = -(-table.num_rows // max(1, shards))
    out = {"rows": 0, "prompt_tokens": 0, "completion_tokens": 0, "errors": 0, "first_s": None}
    with EngineSet("bench") as engines:
        t0 = time.perf_counter()
        engines.app(cfg)
        out["engine_ready_s"] = time.perf_counter() - t0
        ds = generate(ray.data.from_arrow([table.slice(i, step) for i in range(0, table.num_rows, step)]), cfg, engines)
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            if not batch.num_rows:
                continue
            if out["first_s"] is None:
                out["first_s"] = time.perf_counter() - t0
            out["rows"] += batch.num_rows
            out["prompt_tokens"] += pc.sum(batch[S.PROMPT_TOKENS]).as_py() or 0
            out["completion_tokens"] += pc.sum(batch[S.COMPLETION_TOKENS]).as_py() or 0
            out["errors"] += sum(1 for e in batch[S.ENGINE_ERROR].to_pylist() if e)
            log.info("pipeline: %d/%d rows after %.1f s", out["rows"], table.num_rows, time.perf_counter() - t0)
        out["wall_s"] = time.perf_counter() - t0
    return out


# ----------------------------------------------------------------------------- report

def per_user(users: list[str], prompt: list[int], grouped: list[int], inter: list[int] | None) -> list[dict]:
    """Per user: requests, prompt tokens, computed prompt tokens grouped and interleaved (None: not run)."""
    out: dict[str, dict] = {}
    for k, (u, p, g) in enumerate(zip(users, prompt, grouped)):
        r = out.setdefault(u, {"user": u, "requests": 0, "prompt": 0, "grouped": 0,
                               "interleaved": None if inter is None else 0})
        r["requests"] += 1
        r["prompt"] += p
        r["grouped"] += p - g
        if inter is not None:
            r["interleaved"] += p - inter[k]
    return list(out.values())


def print_report(args: argparse.Namespace, n: int, bare: dict, pipe: dict | None, users: list[dict],
                 load0: float) -> dict:
    """The side-by-side tables and target lines on stdout; the numbers as a dict (--json)."""
    b_prompt, b_gen = sum(bare["prompt_tokens"]), sum(bare["completion_tokens"])
    arms = [("bare generate (warm)", n, b_prompt, b_gen, bare["gen_s"]),
            ("bare start + generate", n, b_prompt, b_gen, bare["start_s"] + bare["gen_s"])]
    ready = pipe["engine_ready_s"] if pipe else None
    if pipe:
        arms.append(("pipeline e2e", pipe["rows"], pipe["prompt_tokens"], pipe["completion_tokens"], pipe["wall_s"]))
    if ready is not None:
        arms.append(("pipeline after engine up", pipe["rows"], pipe["prompt_tokens"], pipe["completion_tokens"],
                     pipe["wall_s"] - ready))
    base = b_gen / bare["gen_s"]
    print(f"\nmodel {args.model_dir}; {len(users)} users x {args.requests_per_user} {KIND} requests = {n} prompts "
          f"(history ~{args.history_tokens} tokens, longest prompt {max(bare['prompt_tokens'])} tokens); "
          f"max_tokens {args.max_tokens}, temperature {args.temperature} with a seed per request, structured outputs "
          f"{'off' if args.no_structured else 'on'}; max_model_len {args.max_model_len}, max_num_seqs "
          f"{args.max_num_seqs}, KV cache {args.kv_cache_gib} GiB = {bare['kv_tokens']:,} tokens in blocks of "
          f"{bare['block_size']}; pipeline batch_size {args.batch_size}, {args.shards} input block(s)")
    print(f"load average before/after: {load0:.1f}/{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
          "(other jobs on the machine slow every arm)")
    print(f"bare engine start {bare['start_s']:.1f} s (warm-up not counted)"
          + (f"; pipeline: engine served after {ready:.1f} s, first rows after {pipe['first_s']:.1f} s, last after "
             f"{pipe['wall_s']:.1f} s" if ready is not None else ""))
    if pipe and ready is None:
        print("pipeline: no engine start time: no steady-state row")
    hdr = (f"{'arm':<26} {'prompts':>7} {'prompt tok':>10} {'gen tok':>8} {'seconds':>8} {'gen tok/s':>9} "
           f"{'all tok/s':>9} {'vs bare':>7}")
    print("\n" + hdr + "\n" + "-" * len(hdr))
    rows = []
    for name, k, p, g, sec in arms:
        rows.append({"arm": name, "prompts": k, "prompt_tokens": p, "gen_tokens": g, "seconds": sec,
                     "gen_tok_s": g / sec, "all_tok_s": (p + g) / sec, "vs_bare": g / sec / base})
        print(f"{name:<26} {k:>7} {p:>10,} {g:>8,} {sec:>8.1f} {g / sec:>9.1f} {(p + g) / sec:>9.1f} "
              f"{g / sec / base:>7.2f}")
    print("(vs bare: generated tokens/s over the bare engine's warm generate)")
    if pipe and pipe["errors"]:
        print(f"pipeline: {pipe['errors']} rows came back with engine_error")
    if pipe and abs(pipe["completion_tokens"] - b_gen) > 0.02 * b_gen:
        print(f"note: the arms generated different amounts ({b_gen:,} vs {pipe['completion_tokens']:,} tokens): "
              "compare the all tok/s column too")

    inter = users[0]["interleaved"] is not None
    tot = {k: sum(u[k] for u in users) for k in ("requests", "prompt", "grouped")}
    tot["interleaved"] = sum(u["interleaved"] for u in users) if inter else None
    print(f"\n{'user':<10} {'requests':>8} {'prompt tok':>10} {'computed grouped':>16} {'no reuse/grouped':>16}"
          + (f" {'computed interleaved':>20} {'interleaved/grouped':>19}" if inter else ""))
    for u in users[:args.show_users] + [{"user": "all", **tot}]:
        print(f"{u['user']:<10} {u['requests']:>8} {u['prompt']:>10,} {u['grouped']:>16,} "
              f"{u['prompt'] / max(1, u['grouped']):>16.2f}"
              + (f" {u['interleaved']:>20,} {u['interleaved'] / max(1, u['grouped']):>19.2f}" if inter else ""))
    if len(users) > args.show_users:
        print(f"({len(users) - args.show_users} more users in --json)")
    print(f"prefix-cache hit rate {1 - tot['grouped'] / tot['prompt']:.1%} with requests user by user"
          + (f", {1 - tot['interleaved'] / tot['prompt']:.1%} interleaved round robin across users (same cache, "
             "max_tokens 1; it can only miss once the users' prefixes outgrow the cache)" if inter else "")
          + "; no reuse = every prompt token computed (enable_prefix_caching=False)")

    ratios = [u["prompt"] / max(1, u["grouped"]) for u in users]
    print()
    if ready is not None:
        e2e, net = rows[2], rows[3]
        print(f"{'PASS' if net['vs_bare'] >= 0.95 else 'MISS'} pipeline after engine up {net['gen_tok_s']:.1f} gen "
              f"tok/s = {net['vs_bare']:.1%} of the bare engine's {base:.1f} on {n} prompts (target >= 95%); end to "
              f"end {e2e['vs_bare']:.1%} ({e2e['gen_tok_s'] / rows[1]['gen_tok_s']:.1%} of bare start + generate)")
    print(f"{'PASS' if min(ratios) >= 3 else 'MISS'} grouping cuts computed prompt tokens per user "
          f"{min(ratios):.2f}x (worst) / {statistics.median(ratios):.2f}x (median) against no reuse, "
          f"{args.requests_per_user} requests per user (target >= 3x)")
    return {"arms": rows, "users": users, "bare_start_s": bare["start_s"],
            "pipeline_engine_ready_s": ready, "pipeline_first_rows_s": pipe["first_s"] if pipe else None,
            "block_size": bare["block_size"], "kv_tokens": bare["kv_tokens"]}


# ----------------------------------------------------------------------------- main

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=None, help="a Hugging Face model folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--tiny", action="store_true", help="a tiny random chat model (mechanics only)")
    ap.add_argument("--users", type=int, default=3,
                    help="default sized for this 2-core machine (estimated 6-10 min, not run at this size)")
    ap.add_argument("--requests-per-user", type=int, default=12)
    ap.add_argument("--history-tokens", type=int, default=1500, help="budget of each user's history prefix")
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--temperature", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-structured", action="store_true",
                    help="no structured outputs in either arm (default: the kind's regex, as a run sends it)")
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--max-num-seqs", type=int, default=128, help="pinned in both arms")
    ap.add_argument("--kv-cache-gib", type=int, default=1, help="VLLM_CPU_KVCACHE_SPACE in both arms")
    ap.add_argument("--batch-size", type=int, default=16, help="pipeline rows per engine batch (EngineConfig)")
    ap.add_argument("--shards", type=int, default=4, help="pipeline input blocks (a run has one per events shard)")
    ap.add_argument("--interleaved", action="store_true",
                    help="also a prefill-only pass with the requests interleaved across users (costs up to every "
                         "prompt token once more)")
    ap.add_argument("--skip-pipeline", action="store_true", help="bare engine and prefix tables only")
    ap.add_argument("--show-users", type=int, default=20)
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from llm.local_models import smollm2_dir, tiny_chat_model

    args.model_dir = args.model or (tiny_chat_model("/tmp/bench-tiny") if args.tiny else smollm2_dir())
    load0 = os.getloadavg()[0]

    t0 = time.perf_counter()
    table = build_requests(args.model_dir, args.users, args.requests_per_user, args.history_tokens, args.max_tokens,
                           args.temperature, args.seed, args.max_model_len)
    log.info("%d requests built in %.1f s", table.num_rows, time.perf_counter() - t0)
    user_of = table[S.USER_ID].to_pylist()
    kwargs = engine_kwargs(args)

    log.info("arm A: bare vLLM engine in a child process ...")
    bare = child(run_bare, args.model_dir, kwargs, args.kv_cache_gib, table[S.PROMPT].to_pylist(),
                 [json.loads(s) for s in table[S.SAMPLING].to_pylist()], not args.no_structured,
                 interleaved(user_of) if args.interleaved else None)
    if "error" in bare:
        raise SystemExit(1)

    pipe = None
    if not args.skip_pipeline:
        import ray

        from llm.settings import EngineConfig

        cfg = EngineConfig(backend="vllm", model=args.model_dir, dtype="float32", max_model_len=args.max_model_len,
                           batch_size=args.batch_size, enable_prefix_caching=True, temperature=args.temperature,
                           structured_outputs=not args.no_structured,
                           engine_kwargs={"max_num_seqs": args.max_num_seqs},
                           env={"VLLM_CPU_KVCACHE_SPACE": str(args.kv_cache_gib)})
        ray.init(address="local", num_cpus=8, include_dashboard=False, object_store_memory=1_000_000_000,
                 runtime_env={"env_vars": {"PYTHONPATH": REPO}})
        try:
            log.info("arm B: our pipeline on %d prompts ...", table.num_rows)
            pipe = run_pipeline(table, cfg, args.shards)
        finally:
            ray.shutdown()

    users = per_user(user_of, bare["prompt_tokens"], bare["cached_grouped"], bare["cached_interleaved"])
    result = print_report(args, table.num_rows, bare, pipe, users, load0)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), **result}, f, indent=1)


if __name__ == "__main__":
    main()
