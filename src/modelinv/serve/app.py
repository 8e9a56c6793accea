"""The FastAPI application of `modelinv serve`: a checkpoint behind API keys, rate limits and budgets,
input validation and output hardening, with every answered input logged for the monitor.

Endpoints: `GET /healthz` (no key), `GET /v1/info`, `POST /v1/predict`, `GET /v1/alerts` (admin key);
the OpenAPI schema is at `/openapi.json`. Every error body is `{"error": one line, "code": word}` and
says nothing about the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelinv.oracle import Features, Scores
from modelinv.serve.decode import BadInput, Limits, answer, parse
from modelinv.serve.detectors import Detector, scan
from modelinv.serve.exposure import describe
from modelinv.serve.keys import ApiKey, KeyStore
from modelinv.serve.limits import Limiter
from modelinv.serve.querylog import QueryLog

PREDICT_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {
                    "inputs": {"type": "array", "description": "a batch: one nested list of numbers in [0, 1] per input"},
                    "npy": {"type": "string", "description": "the batch as a base64-encoded float32 .npy array"},
                    "format": {"type": "string", "enum": ["json", "npy"], "description": "form of the answer; default: the request's"},
                },
            }
        }
    },
}


@dataclass
class Served:
    """Everything the application serves from: the oracle, its input limits, the key store and the query log."""

    observer: Features | Scores
    limits: Limits
    keys: KeyStore
    log: QueryLog
    detectors: list[Detector] | None = None


def error(status: int, reason: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": reason, "code": code}, status_code=status, headers=headers)


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused (413) as soon as it exceeds `limit` bytes, declared or streamed."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadInput(413, f"body of {declared} bytes exceeds the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadInput(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(served: Served) -> FastAPI:
    """The application over `served`; the model answers with gradients off, in evaluation mode."""
    app = FastAPI(title="modelinv serve", version="1", description="A model behind API keys, rate limits and a query monitor.")
    model, observer = served.observer.model, served.observer
    model.eval()
    limiter = Limiter(served.log.used)
    info = {"input_shape": list(served.limits.input_shape), "exposure": describe(observer), "max_batch": served.limits.max_batch,
            "max_body_bytes": served.limits.max_body_bytes, "input_range": [served.limits.low, served.limits.high], "formats": ["json", "npy"]}

    def observe(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The oracle's answer, and the penultimate activation the monitor needs, taken from the same forward
        pass by a hook (computed apart when the exposure stops before that layer)."""
        captured: list[torch.Tensor] = []
        hook = model.stages[model.embedding_layer].register_forward_hook(lambda module, inputs, out: captured.append(out))
        try:
            output = observer.intercept(x)
        finally:
            hook.remove()
        hidden = torch.cat(captured) if captured else None
        if hidden is None or len(hidden) != len(x):  # stopped earlier, or the stage's module is reused elsewhere
            with torch.no_grad():
                hidden = model.features(x, model.embedding_layer)
        return output, hidden

    def authorise(request: Request) -> ApiKey | JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        key = served.keys.verify(token.strip() if scheme.lower() == "bearer" else None)
        return key if key is not None else error(401, "missing, unknown or revoked API key", "unauthorized", {"WWW-Authenticate": "Bearer"})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error(exc.status_code, "not found" if exc.status_code == 404 else "method not allowed" if exc.status_code == 405 else "request refused", "http")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal error", "internal")

    @app.get("/healthz", summary="Liveness: no key needed")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/info", summary="Input shape, exposure and limits (needs a key)")
    async def get_info(request: Request):
        key = authorise(request)
        return key if isinstance(key, JSONResponse) else info

    @app.post("/v1/predict", summary="Answer a batch as the exposure and output defense allow", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(request: Request):
        key = authorise(request)
        if isinstance(key, JSONResponse):
            return key
        if not limiter.take_request(key):
            return error(429, "rate limit exceeded", "rate_limited", {"Retry-After": f"{limiter.retry_after(key):.3f}"})
        try:
            x, form = parse(await read_body(request, served.limits.max_body_bytes), served.limits)
        except BadInput as bad:
            return error(bad.status, bad.reason, "bad_input")
        if not limiter.charge(key, len(x)):
            return error(429, "query budget exhausted", "budget_exhausted")
        output, hidden = observe(x)
        with torch.no_grad():
            served.log.record(key.id, x, model.forward_from(hidden, model.embedding_layer), hidden.flatten(1))
        return answer(output, form)

    @app.get("/v1/alerts", summary="Keys the monitor flags, with evidence (admin key)")
    async def alerts(request: Request):
        key = authorise(request)
        if isinstance(key, JSONResponse):
            return key
        if not key.admin:
            return error(403, "an admin key is required", "forbidden")
        served.log.flush()
        return {"alerts": [asdict(a) for a in scan(served.log.path, served.detectors)]}

    return app
