"""The FastAPI application of `modelinv serve`: a checkpoint behind API keys, rate limits and budgets,
input validation and output hardening, with every answered input logged for the monitor.

Endpoints: `GET /healthz` (no key), `GET /v1/info`, `POST /v1/predict`, `GET /v1/alerts` (admin key);
the OpenAPI schema is at `/openapi.json`. Every error body is `{"error": one line, "code": word}` and
says nothing about the model.

A prediction is decoded, computed and logged in a pool of `threads` worker threads (the event loop only
authenticates, rate-limits and reads bodies), and its answer is sent only once its inputs are committed
to the query log with the key's budget charged (modelinv.serve.querylog).
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import anyio
import torch
from fastapi import Depends, FastAPI, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelinv.experiment.sweep import available_cores
from modelinv.oracle import Features, Scores
from modelinv.serve.decode import BadInput, Limits, answer, check_content_type, parse
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


class Refused(Exception):
    """A request the server refuses: the status, a one-line reason, a one-word code and response headers."""

    def __init__(self, status: int, reason: str, code: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.reason, self.code, self.headers = status, reason, code, headers


def error(status: int, reason: str, code: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The error response every refusal gets: `{"error": reason, "code": code}`."""
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


bearer = HTTPBearer(auto_error=False, description="an API key made by `modelinv keys create`")


def create_app(served: Served, clock: Callable[[], float] = time.monotonic, threads: int | None = None) -> FastAPI:
    """The application over `served`; the model answers with gradients off, in evaluation mode.

    `clock` (monotonic seconds) drives the rate limits; `threads` predictions run at once (default: the
    available cores), each with the torch thread count the process has (`modelinv serve` sets 1)."""
    app = FastAPI(title="modelinv serve", version="1", description="A model behind API keys, rate limits and a query monitor.")
    model, observer = served.observer.model, served.observer
    model.eval()
    limiter = Limiter(clock)
    workers = anyio.CapacityLimiter(threads or available_cores())
    defense = observer.defense
    decimals = defense.params.decimals if defense is not None and defense.name == "round" else None
    info = {"input_shape": list(served.limits.input_shape), "exposure": describe(observer), "max_batch": served.limits.max_batch,
            "max_body_bytes": served.limits.max_body_bytes, "input_range": [served.limits.low, served.limits.high], "formats": ["json", "npy"]}
    # The penultimate activation the monitor needs, taken from the oracle's own forward pass by one hook
    # that writes to the calling thread's slot, so concurrent predictions never see each other's.
    # (A hook on a model no prediction is running in does nothing.)
    local = threading.local()

    def capture(module: torch.nn.Module, inputs: tuple, out: torch.Tensor) -> None:
        if (captured := getattr(local, "captured", None)) is not None:
            captured.append(out)

    model.stages[model.embedding_layer].register_forward_hook(capture)

    def observe(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The oracle's answer and the penultimate activation (computed apart when the exposure stops before that layer)."""
        local.captured = []
        try:
            output = observer.intercept(x)
            captured = local.captured
        finally:
            local.captured = None
        hidden = torch.cat(captured) if captured else None
        if hidden is None or len(hidden) != len(x):  # stopped earlier, or the stage's module is reused elsewhere
            with torch.no_grad():
                hidden = model.features(x, model.embedding_layer)
        return output, hidden

    def predict_batch(key: ApiKey, body: bytes) -> JSONResponse:
        """Decode, answer and log one request (in a worker thread); the answer exists only once its inputs are committed."""
        try:
            x, form = parse(body, served.limits)
        except BadInput as bad:
            raise Refused(bad.status, bad.reason, "bad_input") from None
        if key.budget is not None and served.log.used(key.id) + len(x) > key.budget:  # spare the inference; `record` decides
            raise Refused(429, "query budget exhausted", "budget_exhausted")
        output, hidden = observe(x)
        with torch.no_grad():
            logits = model.forward_from(hidden, model.embedding_layer)
        if not served.log.record(key.id, x, logits, hidden.flatten(1), budget=key.budget):
            raise Refused(429, "query budget exhausted", "budget_exhausted")
        return JSONResponse(answer(output, form, decimals))

    async def api_key(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> ApiKey:
        """The valid, unrevoked key of the request's bearer token, else 401."""
        key = served.keys.verify(credentials.credentials if credentials is not None else None)
        if key is None:
            raise Refused(401, "missing, unknown or revoked API key", "unauthorized", {"WWW-Authenticate": "Bearer"})
        return key

    async def admin_key(key: ApiKey = Depends(api_key)) -> ApiKey:
        """The request's key if it is an admin key, else 403."""
        if not key.admin:
            raise Refused(403, "an admin key is required", "forbidden")
        return key

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Refused) -> JSONResponse:
        return error(exc.status, exc.reason, exc.code, exc.headers)

    @app.exception_handler(BadInput)
    async def bad_input(request: Request, exc: BadInput) -> JSONResponse:
        return error(exc.status, exc.reason, "bad_input")

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
    async def get_info(key: ApiKey = Depends(api_key)) -> dict:
        return info

    @app.post("/v1/predict", summary="Answer a batch as the exposure and output defense allow", openapi_extra={"requestBody": PREDICT_BODY})
    async def predict(request: Request, key: ApiKey = Depends(api_key)) -> JSONResponse:
        if not limiter.take_request(key):
            raise Refused(429, "rate limit exceeded", "rate_limited", {"Retry-After": f"{limiter.retry_after(key):.3f}"})
        check_content_type(request.headers.get("content-type"))
        body = await read_body(request, served.limits.max_body_bytes)
        return await anyio.to_thread.run_sync(predict_batch, key, body, limiter=workers)

    @app.get("/v1/alerts", summary="Keys the monitor flags, with evidence (admin key)")
    def alerts(key: ApiKey = Depends(admin_key)) -> dict:
        return {"alerts": [asdict(a) for a in scan(served.log.path, served.detectors)]}

    return app
