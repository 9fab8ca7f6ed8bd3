"""Shared fixtures: one real local Ray cluster per test session, one tiny random chat model, the
bundled sample, ../shared/data.

`make test-fast` (`-m "not slow"`) runs without Ray, models or engines: a test that starts any of
them is marked `slow`, and a test that asks for `ray_cluster` without the mark is refused."""
from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

# Credentials for moto's S3 server (tests only); set before Ray starts so workers inherit them.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data samples not found at {SHARED_DATA} (a fresh clone has no ../shared)")
    return SHARED_DATA


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test that asks for the Ray cluster without the `slow` mark (test-fast has no Ray)."""
    unmarked = [i.nodeid for i in items if "ray_cluster" in getattr(i, "fixturenames", ()) and not i.get_closest_marker("slow")]
    if unmarked:
        raise pytest.UsageError(f"these tests start Ray but are not marked slow (test-fast runs without Ray): "
                                f"{', '.join(unmarked)}; add @pytest.mark.slow")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """A tiny random Llama chat model (2 layers, byte-level BPE), built once per session."""
    from llm.local_models import tiny_chat_model

    return tiny_chat_model(str(tmp_path_factory.mktemp("models") / "tiny"))


@pytest.fixture(scope="session")
def ray_cluster():
    """A real local Ray cluster shared by the whole session (8 logical CPUs on this 2-core machine)."""
    import ray

    ray.init(address="local", num_cpus=8, include_dashboard=False, object_store_memory=500_000_000,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield ray
    ray.shutdown()


class HeldUploads:
    """Holds the S3 server's writes to keys containing a chosen text until released, as a stalled
    upload would: a test stops a job's progress at a known point without touching the job."""

    def __init__(self) -> None:
        self.text: str | None = None
        self.released = threading.Event()
        self.held = 0

    def hold(self, text: str) -> None:
        self.text, self.held = text, 0
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def wrap(self, app):
        def held_app(environ, start_response):
            if (self.text and environ.get("REQUEST_METHOD") in ("PUT", "POST")
                    and self.text in environ.get("PATH_INFO", "") and not self.released.is_set()):
                self.held += 1
                self.released.wait(timeout=900)
            return app(environ, start_response)
        return held_app


@contextlib.contextmanager
def moto_server(held: HeldUploads | None = None) -> Iterator[str]:
    """moto's S3 server on a free port of 127.0.0.1 (started and stopped here), as an endpoint URL;
    with `held`, writes it matches wait for its release."""
    from moto.server import ThreadedMotoServer

    class Server(ThreadedMotoServer):
        def _server_entry(self) -> None:  # moto 5.2's own, with the app wrapped
            from moto.moto_server.threaded_moto_server import MotoRequestHandler
            from moto.server import DomainDispatcherApplication, create_backend_app
            from werkzeug.serving import make_server

            app = DomainDispatcherApplication(create_backend_app)
            self._server = make_server(self._ip_address, self._port, held.wrap(app) if held else app, True,
                                       request_handler=MotoRequestHandler)
            self._server_ready_event.set()
            self._server.serve_forever()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = Server(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture()
def s3_endpoint():
    """A moto S3 server for one test."""
    with moto_server() as endpoint:
        yield endpoint


def upload_folder(s3, local: Path, bucket: str, prefix: str) -> None:
    """Upload every file under `local` to s3://bucket/prefix/ (a boto3 client)."""
    for f in sorted(local.rglob("*")):
        if f.is_file():
            s3.upload_file(str(f), bucket, f"{prefix}/{f.relative_to(local)}")


@pytest.fixture(scope="session")
def sample_dir(tmp_path_factory) -> Path:
    from demo.sample_data import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out)
    return out


def sample_inputs(sample: Path) -> list[dict]:
    """The inputs of configs/local.yaml, rooted at another sample folder."""
    import yaml

    cfg = yaml.safe_load((REPO / "configs" / "local.yaml").read_text())
    return [{**i, "path": i["path"].replace("sample_data", str(sample), 1)} for i in cfg["curate"]["inputs"]]
