"""The evaluation report: `report.html` with PNG figures (matplotlib, headless), readable without the
code: per-benchmark accuracy bars with 95% intervals and chance for every model, per-task in-domain
deltas against the base model, a radar of capabilities, pairwise win rates, and the data figures of
earlier stages (the curation funnel from stats.json, the SFT dataset card from sft/stats.json)."""
from __future__ import annotations

import html
import io
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from core.layout import RunLayout  # noqa: E402
from core.storage import RunRoot  # noqa: E402

if TYPE_CHECKING:  # the composed config imports every stage's settings
    from ray_jobs.config import PipelineConfig

log = logging.getLogger(__name__)
FUNNEL_STAGES = ("rules", "clean", "language", "quality", "dedup", "timeline")
METRIC_NAMES = {"item_hit": "item selection accuracy", "judge_score": "judge score (1-10)", "rouge_l": "ROUGE-L",
                "embedding_sim": "embedding similarity", "style_sim": "style similarity",
                "attributed": "authorship attribution"}
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _models(summary: dict) -> list[str]:
    return list(summary["models"])


def benchmark_bars(summary: dict, method: str) -> bytes | None:
    """Accuracy per benchmark for every model, 95% interval whiskers, chance as a black tick."""
    rows = [r for r in summary["mcq"] if r["method"] == method and r["subset"] == "*"]
    if not rows:
        return None
    benches = sorted({r["benchmark"] for r in rows})
    models = _models(summary)
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.4 * len(benches)), 4))
    for k, m in enumerate(models):
        got = {r["benchmark"]: r for r in rows if r["model"] == m}
        xs = [i + (k - (len(models) - 1) / 2) * width for i, b in enumerate(benches) if b in got]
        acc = [got[b]["accuracy"] for b in benches if b in got]
        lo = [got[b]["accuracy"] - got[b]["ci_low"] for b in benches if b in got]
        hi = [got[b]["ci_high"] - got[b]["accuracy"] for b in benches if b in got]
        ax.bar(xs, acc, width, yerr=[lo, hi], capsize=3, label=m)
    chance = {r["benchmark"]: r["chance"] for r in rows}
    ax.hlines([chance[b] for b in benches], [i - 0.45 for i in range(len(benches))],
              [i + 0.45 for i in range(len(benches))], colors="black", linestyles="dashed", label="chance")
    ax.set_xticks(range(len(benches)), benches, rotation=20)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.set_title(f"Out-of-domain benchmarks ({'log-likelihood' if method == 'loglik' else 'generated letter'}), 95% CI")
    ax.legend(fontsize=8, ncol=len(models) + 1)
    return _png(fig)


def in_domain_deltas(summary: dict, base: str = "base") -> bytes | None:
    """Per task and metric: each model's mean minus the base model's (or the means, without a base)."""
    rows = summary["in_domain"]
    if not rows:
        return None
    models = [m for m in _models(summary) if m != base] if any(r["model"] == base for r in rows) else _models(summary)
    keys = sorted({(r["task"], r["metric"]) for r in rows})
    val = {(r["model"], r["task"], r["metric"]): r["mean"] for r in rows}
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.45 * len(keys) * max(len(models), 1))))
    height = 0.8 / max(len(models), 1)
    for k, m in enumerate(models):
        ys, xs = [], []
        for i, (task, metric) in enumerate(keys):
            if (m, task, metric) in val:
                ref = val.get((base, task, metric), 0.0) if base not in models else 0.0
                ys.append(i + (k - (len(models) - 1) / 2) * height)
                xs.append(val[(m, task, metric)] - ref)
        ax.barh(ys, xs, height, label=m)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(keys)), [f"{t}: {METRIC_NAMES.get(m, m)}" for t, m in keys], fontsize=8)
    ax.set_xlabel(f"difference from {base}" if base not in models else "mean")
    ax.set_title("In-domain tasks (held-out users)")
    ax.legend(fontsize=8)
    return _png(fig)


def radar(summary: dict) -> bytes | None:
    """Capabilities per model on one 0-1 scale: benchmark accuracies (log-likelihood when scored, else
    generation) and in-domain metrics averaged over tasks (judge score / 10)."""
    models = _models(summary)
    method = "loglik" if any(r["method"] == "loglik" for r in summary["mcq"]) else "generate"
    axes: dict[str, dict[str, float]] = {}
    for r in summary["mcq"]:
        if r["method"] == method and r["subset"] == "*":
            axes.setdefault(r["benchmark"], {})[r["model"]] = r["accuracy"]
    for metric in ("item_hit", "judge_score", "embedding_sim", "rouge_l", "attributed"):
        for m in models:
            vals = [r["mean"] for r in summary["in_domain"] if r["metric"] == metric and r["model"] == m]
            if vals:
                axes.setdefault(METRIC_NAMES[metric], {})[m] = float(np.mean(vals)) / (10 if metric == "judge_score" else 1)
    names = [a for a in axes if all(m in axes[a] for m in models)]
    if len(names) < 3:
        return None
    angles = np.linspace(0, 2 * np.pi, len(names), endpoint=False).tolist()
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"polar": True})
    for m in models:
        vals = [axes[a][m] for a in names]
        ax.plot(angles + angles[:1], vals + vals[:1], label=m)
        ax.fill(angles + angles[:1], vals + vals[:1], alpha=0.1)
    ax.set_xticks(angles, names, fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_title("Capabilities (0-1)")
    ax.legend(loc="lower right", bbox_to_anchor=(1.25, -0.05), fontsize=8)
    return _png(fig)


def funnel(curate_stats: dict) -> bytes | None:
    """Events left after each curation stage, per platform (log scale)."""
    platforms = curate_stats.get("platforms") or {}
    if not platforms:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = ["read", *FUNNEL_STAGES]
    for p, s in sorted(platforms.items()):
        left, series = s.get("read", 0), [s.get("read", 0)]
        for stage in FUNNEL_STAGES:
            left -= sum((s.get("rejected") or {}).get(stage, {}).values())
            series.append(left)
        ax.plot(labels, np.maximum(series, 0.8), marker="o", label=f"{p} ({s.get('users', 0)} users)")
    ax.set_yscale("log")
    ax.set_ylabel("events left")
    ax.set_title("Curation funnel")
    ax.legend(fontsize=8)
    return _png(fig)


def dataset_figure(sft_stats: dict) -> bytes | None:
    """SFT examples per platform and task, train and test."""
    splits = sft_stats.get("splits") or {}
    counts: dict[str, dict[str, int]] = {}
    for split in ("train", "test"):
        for platform, tasks in ((splits.get(split) or {}).get("by_platform_task") or {}).items():
            for task, n in tasks.items():
                counts.setdefault(f"{platform}: {task}", {})[split] = n
    if not counts:
        return None
    keys = sorted(counts)
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(keys))))
    left = np.zeros(len(keys))
    for split in ("train", "test"):
        vals = np.array([counts[k].get(split, 0) for k in keys], dtype=float)
        ax.barh(keys, vals, left=left, label=split)
        left += vals
    ax.set_xlabel("examples")
    ax.set_title("SFT dataset (held-out users in test)")
    ax.legend(fontsize=8)
    return _png(fig)


def _fmt_acc(r: dict) -> str:
    return f"{r['accuracy']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def mcq_tables(summary: dict) -> str:
    models = _models(summary)
    parts = []
    for method in ("loglik", "generate"):
        rows = [r for r in summary["mcq"] if r["method"] == method]
        if not rows:
            continue
        got = {(r["model"], r["benchmark"], r["subset"]): r for r in rows}
        keys = sorted({(r["benchmark"], r["subset"]) for r in rows}, key=lambda k: (k[0], k[1] != "*", k[1]))
        table = []
        for bench, subset in keys:
            ref = next(got[(m, bench, subset)] for m in models if (m, bench, subset) in got)
            table.append([bench, "all" if subset == "*" else subset, ref["n"], f"{ref['chance']:.3f}",
                          *(_fmt_acc(got[(m, bench, subset)]) if (m, bench, subset) in got else "" for m in models),
                          *([f"{max(got[(m, bench, subset)]['unparsed'] for m in models if (m, bench, subset) in got):.2f}"]
                            if method == "generate" else [])])
        title = "log-likelihood of each option" if method == "loglik" else "generated answer letter"
        header = ["benchmark", "subset", "items", "chance", *models, *(["unparsed (max)"] if method == "generate" else [])]
        overall = [t for t in table if t[1] == "all"]
        subsets = [t for t in table if t[1] != "all"]
        parts.append(f"<h3>Scored by {title}</h3>{_table(header, overall)}"
                     f"<details><summary>Per subset</summary>{_table(header, subsets)}</details>")
    return "".join(parts) or "<p>No benchmark items were scored.</p>"


def in_domain_table(summary: dict) -> str:
    models = _models(summary)
    val = {(r["model"], r["task"], r["metric"]): r for r in summary["in_domain"]}
    keys = sorted({(r["task"], r["metric"]) for r in summary["in_domain"]})
    if not keys:
        return "<p>No in-domain test examples were scored.</p>"
    rows = [[task, METRIC_NAMES.get(metric, metric), max(val[(m, task, metric)]["n"] for m in models if (m, task, metric) in val),
             *(f"{val[(m, task, metric)]['mean']:.3f} [{val[(m, task, metric)]['ci_low']:.3f}, {val[(m, task, metric)]['ci_high']:.3f}]"
               if (m, task, metric) in val else "" for m in models)] for task, metric in keys]
    return _table(["task", "metric", "n", *models], rows)


def pairwise_table(summary: dict) -> str:
    rows = [[r["model_a"], r["model_b"], "all" if r["task"] == "*" else r["task"], r["n"],
             f"{r['win_rate']:.3f}", r["wins"], r["ties"], r["losses"], r["unparsed"]] for r in summary["pairwise"]]
    if not rows:
        return "<p>No pairwise comparisons.</p>"
    return _table(["model A", "model B", "task", "pairs", "A's win rate", "wins", "ties", "losses", "unparsed"], rows)


def ablation_section(layout: RunLayout) -> str:
    """The person ablation's table, when `humanllm ablate-person` has run for this run root."""
    out = layout.ablation_root()
    if not out.exists(RunLayout.ABLATION_RESULTS):
        return "<p>Not run for this run root (<code>humanllm ablate-person --config ...</code>).</p>"
    s = out.read_json(RunLayout.ABLATION_RESULTS)
    rows = [[arm, r["train_examples"], r["test_examples"], r["mean_tokens"], f"{r['before']:.4f}", f"{r['after']:.4f}"]
            for arm, r in s["arms"].items()]
    return (_table(["arm", "train examples", "test examples", "mean tokens per example", "held-out loss before",
                    "after"], rows) +
            f"<p>Held-out loss lower with the person part by {s['gain_from_person_before']:+.4f} before training and "
            f"{s['gain_from_person_after']:+.4f} after (positive: knowing the person helps predict the behaviour).</p>")


def _read_json(root: RunRoot, rel: str) -> dict:
    try:
        return root.read_json(rel) if root.exists(rel) else {}
    except ValueError:
        return {}


CSS = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}
th{background:#f2f2f2}img{max-width:100%;border:1px solid #eee;margin:.5em 0}.note{color:#555;font-size:13px}"""
CHECK = """<script>window.addEventListener('load',()=>{const imgs=[...document.images];
document.body.dataset.images=imgs.length;
document.body.dataset.imagesLoaded=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;});</script>"""


def write_report(cfg: PipelineConfig, layout: RunLayout, summary: dict) -> str:
    """Write figures/*.png and report.html under the evaluation folder; return the report's URI."""
    run, out = layout.root, layout.eval_root
    figures = {"benchmarks_loglik": benchmark_bars(summary, "loglik"),
               "benchmarks_generate": benchmark_bars(summary, "generate"),
               "in_domain_deltas": in_domain_deltas(summary), "radar": radar(summary),
               "curation_funnel": funnel(_read_json(run, layout.STATS)),
               "sft_dataset": dataset_figure(_read_json(run, layout.sft_stats()))}
    imgs = {}
    for name, png in figures.items():
        if png is not None:
            out.write_bytes(layout.eval_figure(name), png)
            imgs[name] = f'<img src="{layout.eval_figure(name)}" alt="{name}">'
    from evaluation.simulation import report_section as simulation_section

    models = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v['backend'])} {html.escape(v['model'])}</li>"
                     for k, v in summary["models"].items())
    bench_rows = [[b, *(("skipped: " + c["skipped"],) if "skipped" in c else (c["loaded"], c["in_langs"], c["scored"]))]
                  for b, c in summary["benchmarks"].items()]
    bench_rows = [r + [""] * (4 - len(r)) for r in bench_rows]
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>HumanLLM evaluation</title>
<style>{CSS}</style></head><body>
<h1>HumanLLM evaluation</h1>
<p>Run root <code>{html.escape(cfg.run_root)}</code>. Models compared on the same items:</p><ul>{models}</ul>
<p class="note">Accuracies carry 95% bootstrap intervals ({cfg.evaluate.bootstrap} resamples of the items);
chance is the mean of 1/options. Log-likelihood scoring picks the option whose tokens have the highest mean
log-probability after the question (the model's chat template); generation scoring parses the answer letter
(an answer naming no option counts as wrong and as unparsed).</p>
<h2>Out-of-domain social intelligence</h2>
{imgs.get('benchmarks_loglik', '')}{imgs.get('benchmarks_generate', '')}
{mcq_tables(summary)}
<h2>In-domain: held-out users</h2>
<p class="note">{summary['in_domain_examples']} test examples from users never seen in training. Item selection:
the gold title appears in the answer. Generative tasks: LLM judge score against the person's real text, ROUGE-L,
all-MiniLM-L6-v2 cosine similarity; writing tasks also: stylometric similarity to the user's other real texts
and authorship attribution (a character n-gram classifier trained on the users' real texts names the right user).</p>
{imgs.get('in_domain_deltas', '')}
{in_domain_table(summary)}
<h3>Pairwise judge (each pair judged in both orders)</h3>
{pairwise_table(summary)}
<h3>Person ablation: the same SFT with and without the person part (held-out users)</h3>
{ablation_section(layout)}
{simulation_section(summary.get("simulation"))}
<h2>Capabilities</h2>{imgs.get('radar', '<p>Too few shared axes for a radar.</p>')}
<h2>Data</h2>{imgs.get('curation_funnel', '<p>No curation stats in this run root.</p>')}
{imgs.get('sft_dataset', '<p>No SFT dataset stats in this run root.</p>')}
<h2>Benchmarks</h2>{_table(['benchmark', 'items loaded', 'in the languages scored', 'scored'], bench_rows)}
<p class="note">Engine errors in in-domain generation: {html.escape(str(summary['generation_errors_in_domain']))};
judge verdicts that could not be parsed: {summary['judge_unparsed']}.</p>
{CHECK}</body></html>"""
    out.write_bytes(layout.EVAL_REPORT, page.encode())
    log.info("evaluation report: %s", out.uri_of(layout.EVAL_REPORT))
    return out.uri_of(layout.EVAL_REPORT)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def render_in_chromium(report: Path, screenshot: Path, width: int = 1280, height: int = 2400) -> str:
    """Open a local report in headless Chromium: write a screenshot and return the DOM after load."""
    exe = chromium()
    if exe is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as profile:
        base = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000"]
        url = report.resolve().as_uri()
        subprocess.run([*base, f"--window-size={width},{height}", f"--screenshot={screenshot}", url],
                       check=True, capture_output=True, timeout=120)
        dom = subprocess.run([*base, "--dump-dom", url], check=True, capture_output=True, timeout=120, text=True)
    return dom.stdout
