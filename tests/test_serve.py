"""`humanllm serve` as a user starts it: a child process with its own embedded Ray, the tiny model on the
vLLM CPU build behind Ray Serve LLM on 127.0.0.1, the people of a run root. Checked over HTTP only: the
official `openai` client, `/v1/simulate` for every task (the structured ones always parse), the errors a
client can act on, a bounded burst of concurrent requests (p50/p95 latency, no errors), and the
synthesis stage's OpenAI-compatible HTTP engine against this endpoint. The service is stopped by its
process group id."""
from __future__ import annotations

import json
import logging
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

from core import schema as S
from core.storage import RunRoot
from llm.serving import MODEL_ID
from synthesis.stage import run as run_synthesis
from tests.conftest import REPO
from tests.sft_fixtures import ITEMS, REDDIT_USERS, SHOPPERS, write_sft_run_root
from tests.synth_fixtures import write_run_root
from tests.test_synthesis_engines import _answered_once
from tests.test_synthesis_vllm import vllm_config

pytestmark = pytest.mark.slow  # a Ray of its own, Serve and a vLLM engine
log = logging.getLogger(__name__)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, path: str, body: dict | bytes | None = None, timeout: float = 120.0) -> tuple[int, dict]:
    """(status, JSON body) of a GET (body None) or POST to the service."""
    data = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def service(tiny_model, tmp_path_factory):
    """`python -m ray_jobs.cli serve` on a free port of 127.0.0.1 over the SFT fixture's people; its base URL."""
    tmp = tmp_path_factory.mktemp("serve")
    write_sft_run_root(str(tmp / "run"))
    port = _free_port()
    cfg = {"run_root": str(tmp / "run"), "ray": {"num_cpus": 4, "object_store_memory": 300_000_000},
           "serve": {"model": tiny_model, "port": port,
                     "engine": {"backend": "vllm", "dtype": "float32", "max_model_len": 2048},
                     "max_tokens": {"next_post": 24, "comment": 24, "think": 24, "explain": 24, "rate": 64,
                                    "choose": 96}}}
    (tmp / "serve.yaml").write_text(yaml.safe_dump(cfg))
    out = open(tmp / "serve.out", "w")
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "ray_jobs.cli", "serve", "--config", str(tmp / "serve.yaml")],
                            cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if call(base, "/v1/models", timeout=5)[0] == 200:
                    break
            except (OSError, ValueError):
                pass
            assert proc.poll() is None, f"humanllm serve exited: {(tmp / 'serve.out').read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"no service after 300 s: {(tmp / 'serve.out').read_text()[-3000:]}"
            time.sleep(1.0)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # the command deletes the app and stops its Ray
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
    assert proc.returncode == 0, (tmp / "serve.out").read_text()[-3000:]


def test_the_openai_client_talks_to_the_service(service):
    from openai import OpenAI

    client = OpenAI(base_url=f"{service}/v1", api_key="unused")
    assert [m.id for m in client.models.list().data] == [MODEL_ID]
    reply = client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Hello!"}],
                                           max_tokens=8, temperature=0.0)
    assert reply.choices[0].message.content is not None and reply.usage.completion_tokens > 0


def _simulate_requests() -> list[dict]:
    reddit, shopper = REDDIT_USERS[0], SHOPPERS[0]
    items = list(ITEMS.values())[:3]
    return [
        {"user_id": reddit, "platform": "reddit", "task": "next_post", "situation": "a weekend hike"},
        {"user_id": reddit, "platform": "reddit", "task": "comment", "situation": "What would you do with a free day?"},
        {"user_id": reddit, "platform": "reddit", "task": "think", "situation": "A friend cancels plans at the last minute."},
        {"user_id": shopper, "platform": "amazon", "task": "rate", "situation": items[0]},
        {"user_id": shopper, "platform": "amazon", "task": "choose", "candidates": items, "n": 2},
    ]


def test_simulate_every_task_and_the_structured_ones_parse(service):
    for body in _simulate_requests():
        status, reply = call(service, "/v1/simulate", body)
        assert status == 200, (body, reply)
        assert reply["task"] == body["task"] and len(reply["answers"]) == body.get("n", 1)
        for answer in reply["answers"]:
            if body["task"] == "rate":
                assert answer["rating"] in (1, 2, 3, 4, 5), answer
            elif body["task"] == "choose":
                assert answer["choice"] in body["candidates"], answer
            else:
                assert isinstance(answer["text"], str), answer
    status, people = call(service, "/v1/people?platform=amazon&limit=2")
    assert status == 200 and len(people["people"]) == 2
    assert {p["platform"] for p in people["people"]} == {"amazon"}
    status, person = call(service, f"/v1/people/{REDDIT_USERS[0]}")
    assert status == 200 and person["user_id"] == REDDIT_USERS[0]


def test_errors_name_what_is_wrong_and_the_service_keeps_serving(service):
    status, reply = call(service, "/v1/simulate", {"user_id": "nobody", "platform": "reddit", "task": "next_post"})
    assert status == 404 and "nobody" in reply["error"]["message"]
    status, reply = call(service, "/v1/simulate", {"user_id": REDDIT_USERS[0], "platform": "reddit", "task": "dance"})
    assert status == 422 and reply["error"]["field"] == "task"
    status, reply = call(service, "/v1/simulate", {"user_id": SHOPPERS[0], "platform": "amazon", "task": "choose",
                                                   "candidates": ["only one"]})
    assert status == 422 and reply["error"]["missing"], reply
    status, reply = call(service, "/v1/simulate", {"user_id": REDDIT_USERS[0], "platform": "reddit",
                                                   "task": "explain", "situation": "a post they never wrote"})
    assert status == 422 and reply["error"]["missing"], reply
    status, reply = call(service, "/v1/simulate", b"not json")
    assert status == 422 and reply["error"]["field"] == "body"
    status, reply = call(service, f"/v1/people/{'x' * 20}")
    assert status == 404
    assert call(service, "/v1/simulate", _simulate_requests()[0])[0] == 200  # still serving


def test_a_bounded_burst_of_concurrent_requests(service):
    """32 requests, 8 at a time: every one answered; latency percentiles reported (never asserted)."""
    bodies = [_simulate_requests()[i % 5] for i in range(32)]

    def timed(body: dict) -> tuple[int, float]:
        t0 = time.perf_counter()
        status, _ = call(service, "/v1/simulate", body)
        return status, time.perf_counter() - t0

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(timed, bodies))
    assert [s for s, _ in results if s != 200] == []
    latencies = sorted(t for _, t in results)
    p50, p95 = statistics.median(latencies), latencies[int(0.95 * (len(latencies) - 1))]
    log.warning("simulate burst: 32 requests, 8 concurrent: p50 %.2f s, p95 %.2f s, 0 errors", p50, p95)


def test_openai_http_engine_against_the_service(ray_cluster, service, tmp_path):
    path = str(tmp_path / "run")
    write_run_root(path)
    cfg = vllm_config(path, MODEL_ID, engine={"backend": "openai", "url": f"{service}/v1/chat/completions",
                                              "max_retries": 1, "tokenizer": None},
                      kinds=["tag_v2"], platforms=["amazon"])
    run_synthesis(cfg, use_ray=True)
    outputs = _answered_once(RunRoot(path), 3)
    assert all(o[S.ENGINE] == "openai" and not o[S.ENGINE_ERROR] for o in outputs)
    # the JSON schema went out as response_format: even a random model answers with an object
    assert all(o[S.GENERATED_TEXT].lstrip().startswith("{") for o in outputs)


def test_serve_resolves_the_runs_models(tmp_path):
    from ray_jobs.config import parse_config
    from ray_jobs.serve import model_path

    cfg = parse_config({"run_root": str(tmp_path / "run")})
    assert model_path(cfg, "merged") == str(Path(tmp_path / "run" / "model" / "merged"))
    assert model_path(cfg, "/some/folder") == "/some/folder"
