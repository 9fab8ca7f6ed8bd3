"""The simulation service: Ray Serve LLM's OpenAI-compatible ingress (`/v1/chat/completions`,
`/v1/models`, ...) over vLLM replicas of the tuned model, extended with the person-conditioned routes:

  POST /v1/simulate            {user_id, platform, task, situation?, candidates?, n?}
  GET  /v1/people?platform=&limit=
  GET  /v1/people/{user_id}

A simulate request becomes the chat request the matching SFT task would have built for that person
(`simulate.tasks.build`), sent to the same engine replicas as any OpenAI request. Errors a client can
act on are JSON bodies `{"error": {"message", "field" | "missing"}}`: 404 for an unknown person, 422
for a bad payload (naming the field) or a task the person's data cannot support (naming what is
missing); anything else is a 500 with the reason, and the replica keeps serving."""
from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from ray.serve.llm.ingress import OpenAiIngress

from llm.serving import MODEL_ID

log = logging.getLogger(__name__)
APP_NAME = "humanllm-serve"
ENDPOINTS = {
    "models": lambda app: app.get("/v1/models"),
    "model_data": lambda app: app.get("/v1/models/{model:path}"),
    "chat": lambda app: app.post("/v1/chat/completions"),
    "completions": lambda app: app.post("/v1/completions"),
    "simulate": lambda app: app.post("/v1/simulate"),
    "people": lambda app: app.get("/v1/people"),
    "person": lambda app: app.get("/v1/people/{user_id}"),
}


def _error(status: int, message: str, **where: Any) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message, **where}})


class SimulateIngress(OpenAiIngress):
    """OpenAI routes plus the simulate and people routes; `config` is the pipeline config as a dict."""

    def __init__(self, llm_deployments, model_cards, *, config: dict, **kwargs):
        from ray_jobs.config import parse_config
        from simulate.people import People

        super().__init__(llm_deployments, model_cards, **kwargs)
        self.cfg = parse_config(config)
        self.people_index = People.load(self.cfg)

    async def people(self, platform: str | None = None, limit: int = 100) -> JSONResponse:
        if limit < 1:
            return _error(422, "limit must be at least 1", field="limit")
        return JSONResponse({"people": self.people_index.list(platform, limit)})

    async def person(self, user_id: str) -> JSONResponse:
        from simulate.people import UnknownPerson

        try:
            return JSONResponse(self.people_index.summary(user_id))
        except UnknownPerson as exc:
            return _error(404, str(exc), field="user_id")

    async def simulate(self, request: Request) -> JSONResponse:
        try:
            return await self._simulate(request)
        except Exception as exc:  # a request never takes the replica down
            log.exception("simulate failed")
            return _error(500, f"{type(exc).__name__}: {exc}")

    async def _simulate(self, request: Request) -> JSONResponse:
        from pydantic import ValidationError
        from ray.serve.llm.openai_api_models import ChatCompletionRequest, ErrorResponse

        from simulate.people import UnknownPerson
        from simulate.tasks import SimulateRequest, Unsupported

        try:
            body = await request.json()
        except ValueError:
            return _error(422, "the body is not JSON", field="body")
        try:
            req = SimulateRequest.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            return _error(422, f"{'.'.join(map(str, first['loc'])) or 'body'}: {first['msg']}",
                          field=".".join(map(str, first["loc"])))
        try:
            bundle = self.people_index.get(req.user_id)
        except UnknownPerson as exc:
            return _error(404, str(exc), field="user_id")
        if bundle.platform != req.platform:
            return _error(422, f"person {req.user_id} is on {bundle.platform}, not {req.platform}", field="platform")
        try:
            prompt = self.people_index.build(req)
        except Unsupported as exc:
            return _error(422, str(exc), missing=exc.missing)
        s = self.cfg.serve
        chat = ChatCompletionRequest(model=MODEL_ID, messages=prompt.messages, n=req.n, temperature=s.temperature,
                                     max_tokens=s.max_tokens.get(req.task, 256),
                                     response_format=prompt.response_format, seed=prompt.seed)
        reply = None
        async for chunk in self._get_response(body=chat, call_method="chat"):
            reply = chunk[0] if isinstance(chunk, list) else chunk
            break
        if reply is None or isinstance(reply, ErrorResponse):
            return _error(502, f"the engine failed: {getattr(getattr(reply, 'error', None), 'message', 'no answer')}")
        answers = []
        for choice in reply.choices:
            try:
                answers.append(prompt.parse(choice.message.content or ""))
            except ValueError as exc:
                return _error(502, f"the model's answer did not parse: {exc}")
        return JSONResponse({"user_id": req.user_id, "platform": req.platform, "task": req.task,
                             "answers": answers, "usage": reply.usage.model_dump() if reply.usage else None})


def build_app(cfg, model_path: str):
    """The Serve application: engine replicas of `model_path` (autoscaled per `serve.autoscaling`) behind
    the simulate ingress."""
    from ray import serve
    from ray.llm._internal.serve.core.configs.openai_api_models import to_model_metadata  # as Ray's builder does
    from ray.serve.llm import build_llm_deployment
    from ray.serve.llm.ingress import make_fastapi_ingress

    from llm.serving import llm_config

    s = cfg.serve
    engine = s.engine.model_copy(update={"model": model_path})
    llm = llm_config(engine, cfg.storage, deployment_config={"autoscaling_config": s.autoscaling.model_dump()})
    server = build_llm_deployment(llm, override_serve_options={"name": "engine"})
    ingress = make_fastapi_ingress(SimulateIngress, endpoint_map=ENDPOINTS)
    options = SimulateIngress.get_deployment_options([llm])
    return serve.deployment(ingress, **options).bind(
        llm_deployments={MODEL_ID: server}, model_cards={MODEL_ID: to_model_metadata(MODEL_ID, llm)},
        config=cfg.model_dump(mode="json", exclude={"salt"}))  # the salt stays out of Serve
