"""The other engines of the synthesis stage, on real components: the transformers `generate` actor pool
on a local Ray, and the OpenAI-compatible HTTP engine against a real `vllm serve` on 127.0.0.1."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from core import schema as S
from core.layout import RunLayout
from core.storage import RunRoot
from synthesis.stage import run as run_synthesis
from tests.synth_fixtures import write_run_root
from tests.test_synthesis_vllm import vllm_config


def _answered_once(root: RunRoot, n: int) -> list[dict]:
    outputs = root.read_parquet(RunLayout.synth_outputs("tags"), schema=S.OUTPUT_SCHEMA).to_pylist()
    ann = root.read_parquet("annotations/tags", schema=S.ANNOTATION_SCHEMA)
    fail = root.read_parquet("failures/tags", schema=S.FAILURE_SCHEMA)
    ids = ann[S.ANNOTATION_ID].to_pylist() + fail[S.REQUEST_ID].to_pylist()
    assert len(ids) == len(set(ids)) == n
    assert all(o[S.PROMPT_TOKENS] > 0 and o[S.COMPLETION_TOKENS] > 0 for o in outputs)
    return outputs


@pytest.mark.slow
def test_transformers_actor_pool_engine(ray_cluster, tiny_model, tmp_path):
    path = str(tmp_path / "run")
    write_run_root(path)
    cfg = vllm_config(path, tiny_model, engine={"backend": "transformers", "concurrency": 1},
                      kinds=["tag_v2"], platforms=["amazon"])
    stats = run_synthesis(cfg, use_ray=True)
    outputs = _answered_once(RunRoot(path), 3)
    assert all(o[S.ENGINE] == "transformers" and not o[S.ENGINE_ERROR] for o in outputs)
    # no structured outputs in this fallback: a random model's answers fail to parse, with the reason
    assert stats["kinds"]["tag_v2"]["requests"] == 3
    fails = RunRoot(path).read_parquet("failures/tags", schema=S.FAILURE_SCHEMA).to_pylist()
    assert all(f[S.REASON] for f in fails)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def vllm_server(tiny_model, tmp_path):
    """`vllm serve` (the OpenAI-compatible server of the vLLM CPU build) on 127.0.0.1, stopped by its pid."""
    port = _free_port()
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1"}
    log = open(tmp_path / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", tiny_model,
                             "--served-model-name", "tiny", "--host", "127.0.0.1", "--port", str(port),
                             "--dtype", "float32", "--max-model-len", "2048", "--enforce-eager"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 300
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(f"vllm serve did not start: {(tmp_path / 'server.log').read_text()[-3000:]}")
                time.sleep(2)
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.mark.slow
def test_openai_http_engine_against_vllm_serve(ray_cluster, vllm_server, tmp_path):
    path = str(tmp_path / "run")
    write_run_root(path)
    cfg = vllm_config(path, "tiny", engine={"backend": "openai", "url": vllm_server, "max_retries": 1,
                                            "tokenizer": None}, kinds=["tag_v2"], platforms=["amazon"])
    run_synthesis(cfg, use_ray=True)
    outputs = _answered_once(RunRoot(path), 3)
    assert all(o[S.ENGINE] == "openai" and not o[S.ENGINE_ERROR] for o in outputs)
    # the JSON schema went out as response_format: even a random model answers with an object
    assert all(o[S.GENERATED_TEXT].lstrip().startswith("{") for o in outputs)
