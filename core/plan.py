"""Capacity planner: from the stats of a sample run to node counts, hours, GPU-hours and dollars for N users.

The stages already count their work. Curate's stats.json has events read and users kept per platform.
synth/stats.json has requests and prompt/completion tokens per pass, and acceptance per kind.
sft/stats.json has examples per platform and task, users and tokens per split. `load_stats` reads them
through the run root's storage (local or s3://). `plan` is a pure function: it scales every per-user
quantity of the sample to the target number of users, caps SFT examples per task at the config's caps,
and turns the work into hours with a throughput and price table (cluster/throughputs.yaml, read by
`load_table`). `format_plan` renders the result as text.

How users are counted. The target N is curated users, the `users` of stats.json. Each stage divides its
work by the users that stage processed in the sample:
- curate: all curated users (events read per curated user);
- synthesize: the users it annotated, min(synthesis.max_users, curated users) per platform;
- build-sft: the users that have SFT examples, per platform. Each (platform, task) count is scaled to
  that platform's share of N, times the fraction of annotated users that gave examples, then capped.

How work becomes time. A CPU stage takes work / (rate per vCPU) CPU-seconds. A vLLM stage takes
prompt / prompt_rate + completion / output_rate GPU-seconds, with both rates per GPU. Training takes
tokens x epochs / packing efficiency / (tokens/s per GPU). Node-hours are those seconds / 3600 / (vCPUs
or GPUs per node). Nodes = ceil(node-hours / hours-per-stage), between 1 and the node type's
max_workers (and the training entry's max_nodes). Wall hours = node-hours / nodes. Cost = node-hours x
price. The stages run one after another. The head node is billed for the sum of their wall hours.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from core.config import ConfigError
from core.layout import RunLayout

# PAPER.md section 2, [secondary, unverified]: "282K users" (the paper's own figure is 5.5M user logs).
PAPER_USERS = 282_000
DEFAULT_TABLE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cluster", "throughputs.yaml")
WRITER_PASSES = ("tags", "user", "post")
JUDGE_PASS = "judge"
STAGES = ("curate", "synthesize", "judge", "build-sft", "train", "evaluate", "evaluate-judge")


class PlanInputError(FileNotFoundError):
    """A stats file the planner needs is missing or incomplete; the message says which stage to run."""


@dataclass(frozen=True)
class SampleStats:
    """The stats files of a sample run (as the stages wrote them)."""

    curate: dict
    synth: dict
    sft: dict
    train_metrics: list[dict] = field(default_factory=list)  # model/metrics.jsonl rows, when the train stage ran
    source: str = ""  # the run root they came from


@dataclass(frozen=True)
class PlanSettings:
    """What the config says about the work, apart from the sample's counts (see `ray_jobs.plan`)."""

    synth_platforms: tuple[str, ...] = ("reddit", "twitter", "blogger", "amazon")
    synth_max_users: int | None = None
    test_fraction: float = 0.1
    caps: Mapping[str, Mapping[str, int | None]] = field(default_factory=dict)  # platform -> task -> cap
    epochs: float = 3.0
    eval_in_domain: bool = True
    eval_examples_per_task: int = 500
    eval_models: int = 3
    eval_judge: bool = True
    eval_judge_pairs: int = 2
    eval_judge_max_tokens: int = 256
    eval_max_new_tokens: int = 512
    judge_exempt_tasks: tuple[str, ...] = ("item_selection",)  # scored by exact match, not by the judge
    models: Mapping[str, str] = field(default_factory=dict)  # stage -> the model the config names


def parse_users(text: str) -> int:
    """`--users`: a count (`282000`, `282k`, `1.5M`) or `paper` (PAPER_USERS)."""
    t = text.strip().lower().replace(",", "").replace("_", "")
    if t == "paper":
        return PAPER_USERS
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    try:
        n = int(float(t[:-1] if mult > 1 else t) * mult)
    except ValueError:
        raise ValueError(f"--users: expected a number of users or `paper`, got {text!r}") from None
    if n < 1:
        raise ValueError(f"--users: must be at least 1, got {text!r}")
    return n


# ---------------------------------------------------------------------------------------- inputs
def load_stats(layout: RunLayout) -> SampleStats:
    """Read the sample's stats through the run root's storage; a missing file names the stage to run."""
    root = layout.root
    found = {}
    for rel, stage in ((layout.STATS, "curate"), (layout.synth_stats(), "synthesize"), (layout.sft_stats(), "build-sft")):
        if not root.exists(rel):
            raise PlanInputError(f"no {rel} under {root.uri}: run the {stage} stage on a sample first "
                                 f"(humanllm pipeline --config C --restart --stages curate,synthesize,build-sft)")
        found[stage] = root.read_json(rel)
    metrics: list[dict] = []
    models = layout.at(layout.model_dir())
    if models.exists(RunLayout.TRAIN_METRICS):
        lines = models.read_bytes(RunLayout.TRAIN_METRICS).decode().splitlines()
        metrics = [json.loads(line) for line in lines if line.strip()]
    return SampleStats(found["curate"], found["synthesize"], found["build-sft"], metrics, root.uri)


def load_table(path: str = DEFAULT_TABLE) -> dict:
    """Read and check the throughput table (cluster/throughputs.yaml): every stage names a known node
    type and its rates; an engine's GPU matches its node type's and fits on it."""
    if not os.path.exists(path):
        raise ConfigError(f"{path}: no throughput table there (the default is cluster/throughputs.yaml)")
    with open(path) as f:
        table = yaml.safe_load(f) or {}
    nodes, stages = table.get("node_types", {}), table.get("stages", {})
    for name, node in nodes.items():
        for key in ("instance", "cpus", "gpus", "price_per_hour", "max_workers"):
            if key not in node:
                raise ConfigError(f"{path}: node_types.{name} has no `{key}`")
    need = {"curate": "events_per_s_per_cpu", "build-sft": "tokens_per_s_per_cpu", "train": "training"}
    for stage in STAGES:
        s = stages.get(stage)
        if s is None:
            raise ConfigError(f"{path}: stages.{stage} is missing")
        node = nodes.get(s.get("node_type"))
        if node is None:
            raise ConfigError(f"{path}: stages.{stage}.node_type {s.get('node_type')!r} is not one of {sorted(nodes)}")
        key = need.get(stage, "engine")
        if key not in s:
            raise ConfigError(f"{path}: stages.{stage} has no `{key}`")
        if key in ("engine", "training"):
            entry = table.get("engines" if key == "engine" else "training", {}).get(s[key])
            if entry is None:
                raise ConfigError(f"{path}: stages.{stage}.{key} {s[key]!r} is not defined under "
                                  f"{'engines' if key == 'engine' else 'training'}:")
            if entry.get("gpu") != node.get("gpu"):
                raise ConfigError(f"{path}: stages.{stage}: {s[key]} is measured on {entry.get('gpu')}, but node "
                                  f"type {s['node_type']} has {node.get('gpu')}")
            if node["gpus"] % entry.get("tensor_parallel", 1):
                raise ConfigError(f"{path}: stages.{stage}: tensor_parallel {entry['tensor_parallel']} does not "
                                  f"divide the {node['gpus']} GPUs of {s['node_type']}")
    return table


def _get(d: Mapping, path: str, src: str) -> Any:
    """d[a][b]... for `a.b...`, or a PlanInputError naming the file and key."""
    cur: Any = d
    for key in path.split("."):
        if not isinstance(cur, Mapping) or key not in cur:
            raise PlanInputError(f"{src}: no `{path}` (written by an older version of the stage? rerun it on the sample)")
        cur = cur[key]
    return cur


# ---------------------------------------------------------------------------------------- the plan
def _ceil_div(a: float, b: float) -> int:
    return int(math.ceil(a / b - 1e-9))


def _size(node_hours: float, cap: int, hours_target: float) -> tuple[int, float, bool]:
    """(nodes, wall hours, capped): enough nodes to finish within `hours_target`, at most `cap`."""
    if node_hours <= 0:
        return 0, 0.0, False
    want = max(1, _ceil_div(node_hours, hours_target))
    nodes = min(want, cap)
    return nodes, node_hours / nodes, want > cap


def _row(stage: str, node_type: str, node: dict, node_hours: float, hours_target: float, work: dict,
         work_text: str, rates: dict, max_nodes: int | None = None) -> dict:
    cap = min(int(node["max_workers"]), max_nodes or 10**9)
    nodes, hours, capped = _size(node_hours, cap, hours_target)
    return {"stage": stage, "node_type": node_type, "instance": node["instance"], "nodes": nodes, "max_nodes": cap,
            "hours": hours, "node_hours": node_hours, "gpu_hours": node_hours * node["gpus"],
            "cpu_hours": node_hours * node["cpus"], "cost": node_hours * node["price_per_hour"],
            "capped": capped, "work": work, "work_text": work_text, "rates": rates}


def _engine_row(stage: str, table: dict, prompt: float, completion: float, requests: float,
                hours_target: float) -> dict:
    s = table["stages"][stage]
    node_type, engine = s["node_type"], table["engines"][s["engine"]]
    node = table["node_types"][node_type]
    gpu_seconds = prompt / engine["prompt_tokens_per_s_per_gpu"] + completion / engine["output_tokens_per_s_per_gpu"]
    work = {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion}
    text = f"{_human(requests)} req, {_human(prompt)} prompt + {_human(completion)} output tok"
    rates = {"engine": s["engine"], "model": engine["model"], "tensor_parallel": engine.get("tensor_parallel", 1),
             "prompt_tokens_per_s_per_gpu": engine["prompt_tokens_per_s_per_gpu"],
             "output_tokens_per_s_per_gpu": engine["output_tokens_per_s_per_gpu"]}
    return _row(stage, node_type, node, gpu_seconds / 3600 / node["gpus"], hours_target, work, text, rates)


def _cpu_row(stage: str, table: dict, work_units: float, rate_key: str, work: dict, text: str,
             hours_target: float) -> dict:
    s = table["stages"][stage]
    node = table["node_types"][s["node_type"]]
    cpu_seconds = work_units / s[rate_key]
    return _row(stage, s["node_type"], node, cpu_seconds / 3600 / node["cpus"], hours_target, work, text,
                {rate_key: s[rate_key]})


def plan(stats: SampleStats, settings: PlanSettings, table: dict, users: int, hours_per_stage: float = 24.0) -> dict:
    """Scale the sample to `users` curated users and size every stage (see the module docstring)."""
    if hours_per_stage <= 0:
        raise ValueError("--hours-per-stage must be positive")
    notes: list[str] = []
    src_cur, src_syn, src_sft = RunLayout.STATS, RunLayout.synth_stats(), RunLayout.sft_stats()

    # ---- curate: events read per curated user
    platforms = _get(stats.curate, "platforms", src_cur)
    cur_users = {p: int(v.get("users", 0)) for p, v in platforms.items()}
    n_cur = sum(cur_users.values())
    if n_cur == 0:
        raise PlanInputError(f"{src_cur}: the curate stage kept no users; plan from a larger sample")
    events_read = sum(v.get("read", 0) + v.get("side", {}).get("read", 0) for v in platforms.values())
    target_users = {p: users * n / n_cur for p, n in cur_users.items()}

    # ---- synthesize: requests and tokens per annotated user
    cap = settings.synth_max_users
    syn_users = {p: (min(cap, cur_users[p]) if cap is not None else cur_users[p])
                 for p in settings.synth_platforms if p in cur_users}
    n_syn = sum(syn_users.values())
    if n_syn == 0:
        raise PlanInputError(f"{src_syn}: the sample has no users on the synthesis platforms {list(settings.synth_platforms)}")
    passes = _get(stats.synth, "passes", src_syn)
    summary = stats.synth.get("pass_summary", {})
    for p in (*WRITER_PASSES, JUDGE_PASS):
        if summary.get(p, {}).get("requests", 0) and not passes.get(p, {}).get("answers", 0):
            raise PlanInputError(f"{src_syn}: the {p} pass sent no requests in its last run (it resumed an earlier "
                                 "one), so its token counts are not the whole pass: rerun the synthesize stage on "
                                 "the sample with --restart")

    def pass_sum(names: tuple[str, ...], key: str) -> float:
        return float(sum(passes.get(p, {}).get(key, 0) for p in names))

    syn_scale = users / n_syn
    writer = {k: pass_sum(WRITER_PASSES, k) * syn_scale for k in ("answers", "prompt_tokens", "completion_tokens")}
    judge = {k: pass_sum((JUDGE_PASS,), k) * syn_scale for k in ("answers", "prompt_tokens", "completion_tokens")}
    kinds = stats.synth.get("kinds", {})
    judged = sum(k.get("judged", 0) for k in kinds.values())
    judge_accepted = sum(k.get("accepted", 0) for k in kinds.values() if k.get("judged"))

    # ---- build-sft: examples per (platform, task), scaled and capped
    train_split, test_split = _get(stats.sft, "splits.train", src_sft), _get(stats.sft, "splits.test", src_sft)
    counts: dict[tuple[str, str], int] = {}
    sft_users: dict[str, int] = {}
    for split in (train_split, test_split):
        for p, tasks in split.get("by_platform_task", {}).items():
            for t, n in tasks.items():
                counts[(p, t)] = counts.get((p, t), 0) + int(n)
        for p, n in split.get("users", {}).items():
            sft_users[p] = sft_users.get(p, 0) + int(n)
    if not counts:
        raise PlanInputError(f"{src_sft}: the SFT dataset of the sample is empty; plan from a larger sample")
    tok_train, tok_test = train_split.get("tokens", {}), test_split.get("tokens", {})
    tokens_per_example = (tok_train.get("total", 0) / tok_train["examples"] if tok_train.get("examples")
                          else tok_test.get("total", 0) / max(1, tok_test.get("examples", 0)))
    test_tokens_per_example = (tok_test["total"] / tok_test["examples"] if tok_test.get("examples")
                               else tokens_per_example)
    target_mean = (test_split.get("target_tokens", {}).get("mean") or train_split.get("target_tokens", {}).get("mean")
                   or 0.0)
    scaled: dict[tuple[str, str], float] = {}
    capped_tasks = []
    for (p, t), n in sorted(counts.items()):
        annotated = syn_users.get(p, sft_users[p])
        yield_p = min(1.0, sft_users[p] / annotated) if annotated else 1.0
        x = n / sft_users[p] * target_users.get(p, 0.0) * yield_p
        c = settings.caps.get(p, {}).get(t)
        if c is not None and x > c:
            x = float(c)
            capped_tasks.append(f"{p}.{t}")
        scaled[(p, t)] = x
    sft_examples = sum(scaled.values())
    sft_tokens = sft_examples * tokens_per_example
    train_examples = sft_examples * (1 - settings.test_fraction)

    # ---- train
    tr_entry = table["training"][table["stages"]["train"]["training"]]
    packing = float(tr_entry.get("packing_efficiency", 1.0))
    train_tokens = train_examples * tokens_per_example * settings.epochs / packing

    # ---- evaluate: up to examples_per_task held-out examples per task, for every model, then the judge
    per_task: dict[str, float] = {}
    for (p, t), x in scaled.items():
        per_task[t] = per_task.get(t, 0.0) + x * settings.test_fraction
    eval_examples = {t: min(x, settings.eval_examples_per_task) for t, x in per_task.items()} if settings.eval_in_domain else {}
    n_eval = sum(eval_examples.values())
    gen_prompt = max(test_tokens_per_example - target_mean, 0.0)
    gen_out = min(target_mean, settings.eval_max_new_tokens)
    gens = n_eval * settings.eval_models
    judged_examples = sum(x for t, x in eval_examples.items() if t not in settings.judge_exempt_tasks)
    pairs = settings.eval_judge_pairs if settings.eval_judge else 0
    models = settings.eval_models if settings.eval_judge else 0
    judge_requests = judged_examples * (models + 2 * pairs)
    judge_prompt = judged_examples * (models * (gen_prompt + target_mean + gen_out)
                                      + 2 * pairs * (gen_prompt + target_mean + 2 * gen_out))
    judge_out = judge_requests * settings.eval_judge_max_tokens

    # ---- rows
    H = hours_per_stage
    rows = [
        _cpu_row("curate", table, users * events_read / n_cur, "events_per_s_per_cpu",
                 {"events": users * events_read / n_cur}, f"{_human(users * events_read / n_cur)} events read", H),
        _engine_row("synthesize", table, writer["prompt_tokens"], writer["completion_tokens"], writer["answers"], H),
        _engine_row("judge", table, judge["prompt_tokens"], judge["completion_tokens"], judge["answers"], H),
        _cpu_row("build-sft", table, sft_tokens, "tokens_per_s_per_cpu",
                 {"examples": sft_examples, "tokens": sft_tokens},
                 f"{_human(sft_examples)} examples, {_human(sft_tokens)} tok", H),
    ]
    tr_stage = table["stages"]["train"]
    tr_node = table["node_types"][tr_stage["node_type"]]
    tr_gpu_seconds = train_tokens / tr_entry["tokens_per_s_per_gpu"]
    rows.append(_row("train", tr_stage["node_type"], tr_node, tr_gpu_seconds / 3600 / tr_node["gpus"], H,
                     {"train_examples": train_examples, "tokens_per_epoch": train_examples * tokens_per_example,
                      "epochs": settings.epochs, "tokens": train_tokens},
                     f"{_human(train_examples * tokens_per_example)} tok x {settings.epochs:g} ep / {packing:g} packing",
                     {"training": tr_stage["training"], "model": tr_entry["model"],
                      "tokens_per_s_per_gpu": tr_entry["tokens_per_s_per_gpu"], "packing_efficiency": packing},
                     max_nodes=tr_entry.get("max_nodes")))
    rows.append(_engine_row("evaluate", table, gens * gen_prompt, gens * gen_out, gens, H))
    rows.append(_engine_row("evaluate-judge", table, judge_prompt, judge_out, judge_requests, H))

    head = table["node_types"]["head"]
    wall = sum(r["hours"] for r in rows)
    head_row = {"stage": "head", "node_type": "head", "instance": head["instance"], "nodes": 1, "max_nodes": 1, "hours": wall,
                "node_hours": wall, "gpu_hours": 0.0, "cpu_hours": wall * head["cpus"],
                "cost": wall * head["price_per_hour"], "capped": False, "work": {},
                "work_text": "Ray head for the whole run", "rates": {}}
    cluster: dict[str, int] = {}
    for r in rows:
        cluster[r["node_type"]] = max(cluster.get(r["node_type"], 0), r["nodes"])

    # ---- notes
    for stage, r in ((r["stage"], r) for r in rows):
        if r["capped"]:
            notes.append(f"{stage}: needs more than {r['max_nodes']} {r['node_type']} nodes (its cap) to finish in "
                         f"{H:g} h; it runs {r['hours']:.1f} h instead")
    for stage in ("synthesize", "judge", "train", "evaluate"):
        cfg_model = settings.models.get(stage)
        tab_model = rows[[r["stage"] for r in rows].index(stage)]["rates"]["model"]
        if cfg_model and cfg_model.rstrip("/").rsplit("/", 1)[-1].lower() != tab_model.rsplit("/", 1)[-1].lower():
            notes.append(f"{stage}: the config runs {cfg_model}, the table's rates are for {tab_model}; the sample's "
                         "token counts come from the config's model and budgets")
    if capped_tasks:
        notes.append(f"SFT caps reached at this scale: {', '.join(capped_tasks)}")
    notes.append("evaluation counts the held-out tasks only, not the out-of-domain benchmarks")

    per_user = {
        "curated_users_in_sample": n_cur, "annotated_users_in_sample": n_syn,
        "sft_users_in_sample": sum(sft_users.values()),
        "events_read_per_user": events_read / n_cur,
        "writer_requests_per_user": pass_sum(WRITER_PASSES, "answers") / n_syn,
        "writer_prompt_tokens_per_request": _ratio(pass_sum(WRITER_PASSES, "prompt_tokens"), pass_sum(WRITER_PASSES, "answers")),
        "writer_completion_tokens_per_request": _ratio(pass_sum(WRITER_PASSES, "completion_tokens"),
                                                       pass_sum(WRITER_PASSES, "answers")),
        "judge_requests_per_user": pass_sum((JUDGE_PASS,), "answers") / n_syn,
        "judge_prompt_tokens_per_request": _ratio(pass_sum((JUDGE_PASS,), "prompt_tokens"), pass_sum((JUDGE_PASS,), "answers")),
        "judge_acceptance_rate": _ratio(judge_accepted, judged),
        "sft_examples_per_user": sum(counts.values()) / max(1, sum(sft_users.values())),
        "sft_tokens_per_example": tokens_per_example,
        "acceptance_rate_per_kind": {k: v.get("acceptance_rate") for k, v in sorted(kinds.items())},
    }
    if stats.train_metrics:
        steps = [m for m in stats.train_metrics if "tokens_per_s" in m]
        if steps:
            per_user["sample_train_tokens_per_s"] = sum(m["tokens_per_s"] for m in steps) / len(steps)
    return {"users": users, "hours_per_stage": H, "sample": stats.source, "per_user": per_user,
            "stages": [*rows, head_row],
            "totals": {"hours": wall, "gpu_hours": sum(r["gpu_hours"] for r in rows),
                       "cost": sum(r["cost"] for r in rows) + head_row["cost"]},
            "cluster": {"max_workers": cluster, "prices_as_of": "see cluster/throughputs.yaml price_source"},
            "notes": notes}


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _human(x: float) -> str:
    """1234 -> 1.23K, 5.6e9 -> 5.6B (three significant digits)."""
    for div, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(x) >= div:
            return f"{x / div:.3g}{suffix}"
    return f"{x:.3g}"


def format_plan(p: dict) -> str:
    """The plan as fixed-width text: one row per stage, totals, the cluster settings, per-user figures, notes."""
    def line(r: dict) -> list[str]:
        return [r["stage"], r["work_text"], f"{r['node_type']} ({r['instance']})", str(r["nodes"]),
                _hours(r["hours"]) + (" capped" if r["capped"] else ""), _amount(r["gpu_hours"]), _amount(r["cost"])]

    t = p["totals"]
    rows = [line(r) for r in p["stages"]] + [["total", "", "", "", _hours(t["hours"]), _amount(t["gpu_hours"]),
                                              _amount(t["cost"])]]
    head = ["stage", "work", "node type", "nodes", "hours", "GPU-h", "cost $"]
    widths = [max(len(x[i]) for x in [head, *rows]) for i in range(len(head))]
    left = {0, 1, 2}  # text columns; the numbers are right-aligned

    def fmt(cells: list[str]) -> str:
        return "  " + "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    out = [f"capacity plan for {p['users']:,} users, sized to finish each stage within {p['hours_per_stage']:g} h "
           f"(sample: {p['sample']})", fmt(head), *(fmt(r) for r in rows)]
    mw = ", ".join(f"{k}={v}" for k, v in p["cluster"]["max_workers"].items())
    out.append(f"cluster settings (cluster/ray-cluster-aws.yaml available_node_types.*.max_workers): {mw}")
    u = p["per_user"]
    per = [("curated / annotated / SFT users in the sample",
            f"{u['curated_users_in_sample']} / {u['annotated_users_in_sample']} / {u['sft_users_in_sample']}"),
           ("events read per curated user", _num(u["events_read_per_user"])),
           ("writer requests per annotated user", _num(u["writer_requests_per_user"])),
           ("writer prompt / completion tokens per request",
            f"{_num(u['writer_prompt_tokens_per_request'])} / {_num(u['writer_completion_tokens_per_request'])}"),
           ("judge requests per annotated user", _num(u["judge_requests_per_user"])),
           ("judge prompt tokens per request", _num(u["judge_prompt_tokens_per_request"])),
           ("judge acceptance rate", _num(u["judge_acceptance_rate"], 2)),
           ("SFT examples per SFT user", _num(u["sft_examples_per_user"])),
           ("SFT tokens per example", _num(u["sft_tokens_per_example"]))]
    if "sample_train_tokens_per_s" in u:
        per.append(("train tokens/s of the sample run (its own hardware)", _num(u["sample_train_tokens_per_s"])))
    width = max(len(k) for k, _ in per)
    out.append("from the sample:\n" + "\n".join(f"  {k:<{width}}  {v}" for k, v in per))
    if p["notes"]:
        out.append("notes:\n" + "\n".join(f"  - {n}" for n in p["notes"]))
    return "\n".join(out)


def _amount(x: float) -> str:
    """GPU-hours and dollars: whole numbers with thousands separators; decimals below 10."""
    return f"{x:,.0f}" if x >= 10 or x == 0 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _hours(x: float) -> str:
    return f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _num(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"
