"""The FastAPI application of `modelinv serve`: a checkpoint behind API keys, rate limits and budgets,
input validation and output hardening, with every answered input logged for the monitor.

Endpoints: `GET /healthz` (no key), `GET /v1/info`, `POST /v1/predict`, `GET /v1/alerts` (admin key);
the OpenAPI schema is at `/openapi.json` (with a key: the request body described down to the input shape,
which only key holders learn), and it documents every status each endpoint answers. Every error body is
`{"error": one line, "code": word}` and says nothing about the model. `GET /v1/info` tells key holders the
model's identity (architecture, shape, classes, weights digest) unless it is served with `--hide-identity`.

A prediction is decoded, computed and logged in a pool of `threads` worker threads (the event loop only
authenticates, rate-limits and reads bodies), and its answer is sent only once its inputs are committed
to the query log with the key's budget charged (modelinv.serve.querylog). Several processes can serve one
application each (modelinv.serve.workers); `Served.shared` then gives them one rate limiter and one window of
recent inputs.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import anyio
import torch
from fastapi import Depends, FastAPI, Request, Security
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException as StarletteHTTPException

from modelinv.experiment.sweep import available_cores
from modelinv.oracle import Features, Scores
from modelinv.serve.decode import BadInput, Limits, answer, check_content_type, parse
from modelinv.serve.detectors import Detector, scan
from modelinv.serve.exposure import describe
from modelinv.serve.keys import ApiKey, KeyStore
from modelinv.serve.limits import Limiter, SharedLimiter
from modelinv.serve.querylog import QueryLog

ERROR = {
    "type": "object",
    "required": ["error", "code"],
    "properties": {"error": {"type": "string", "description": "one line"}, "code": {"type": "string", "description": "one word"}},
    "additionalProperties": False,
}
REFUSALS = {
    400: "the body is not JSON, or not an object with exactly one of 'inputs' or 'npy', or 'npy' is no .npy array",
    401: "missing, unknown or revoked API key",
    403: "an admin key is required",
    413: "the body or the batch is larger than the server allows",
    415: "the Content-Type is not JSON",
    422: "the inputs have the wrong shape, type or values",
    429: "the key's rate limit or query budget is exhausted",
}
HEADERS = {
    401: {"WWW-Authenticate": {"required": True, "schema": {"type": "string", "const": "Bearer"}, "description": "the scheme a key is sent with"}},
    429: {"Retry-After": {"required": False, "schema": {"type": "string"}, "description": "seconds until the next request is admitted (rate limit only)"}},
}


def refusals(*statuses: int) -> dict[int | str, dict]:
    """The OpenAPI responses of these refusals: each an `{"error", "code"}` body."""
    return {
        status: {"description": REFUSALS[status], "content": {"application/json": {"schema": ERROR}}, **({"headers": HEADERS[status]} if status in HEADERS else {})}
        for status in statuses
    }


def answer_of(schema: dict, description: str) -> dict[int | str, dict]:
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}}


def predict_body(limits: Limits, detailed: bool) -> dict:
    """The OpenAPI request body of `POST /v1/predict`. `detailed` (the schema a key holder gets): `inputs`
    described down to the served input shape, value range and largest batch, so that every body valid under
    the schema is answered (but for the contents of `npy`, a base64 .npy string, which no schema can
    describe); otherwise nothing about the model (its shape and limits are for key holders: `GET /v1/info`)."""
    value: dict = {"type": "number"}
    inputs: dict = {"type": "array", "items": {"type": "array"}, "minItems": 1, "description": "a batch: one nested list of numbers per input"}
    shape = ", ".join(map(str, limits.input_shape)) if detailed else "input shape"
    if detailed:
        value |= {"minimum": limits.low, "maximum": limits.high}
        for size in reversed(limits.input_shape):
            value = {"type": "array", "items": value, "minItems": size, "maxItems": size}
        inputs |= {"items": value, "maxItems": limits.max_batch}
    form = {"type": "string", "enum": ["json", "npy"], "description": "form of the answer; default: the request's"}
    npy = {"type": "string", "description": f"the batch as a base64-encoded float32 .npy array of shape (N, {shape})"}
    schema = {
        "oneOf": [
            {"type": "object", "required": ["inputs"], "properties": {"inputs": inputs, "format": form}, "additionalProperties": False},
            {"type": "object", "required": ["npy"], "properties": {"npy": npy, "format": form}, "additionalProperties": False},
        ],
        **({"description": f"at most {limits.max_body_bytes} bytes"} if detailed else {}),
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


PREDICTION = {
    "oneOf": [
        {"type": "object", "required": ["outputs"], "properties": {"outputs": {"type": "array"}}, "additionalProperties": False},
        {"type": "object", "required": ["npy"], "properties": {"npy": {"type": "string"}}, "additionalProperties": False},
    ]
}
INFO = {
    "type": "object",
    "required": ["input_shape", "exposure", "max_batch", "max_body_bytes", "input_range", "formats"],
    "properties": {
        "input_shape": {"type": "array", "items": {"type": "integer"}},
        "exposure": {"type": "object"},
        "max_batch": {"type": "integer"},
        "max_body_bytes": {"type": "integer"},
        "input_range": {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2},
        "formats": {"type": "array", "items": {"type": "string"}},
        "model": {
            "description": "the served model's identity (null when served with --hide-identity): architecture, input shape, classes and "
                           "the SHA-256 of its weights (modelinv.models.store.module_digest), so a remote run can check it attacks the model it means",
            "oneOf": [
                {"type": "null"},
                {"type": "object", "required": ["arch", "input_shape", "num_classes", "weights_digest"],
                 "properties": {"arch": {"type": "string"}, "input_shape": {"type": "array", "items": {"type": "integer"}},
                                "num_classes": {"type": "integer"}, "weights_digest": {"type": "string"}}},
            ],
        },
    },
}
ALERTS = {"type": "object", "required": ["alerts"], "properties": {"alerts": {"type": "array", "items": {"type": "object"}}}}
HEALTH = {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}}


@dataclass
class Served:
    """Everything the application serves from: the oracle, its input limits, the key store and the query log."""

    observer: Features | Scores
    limits: Limits
    keys: KeyStore
    log: QueryLog
    detectors: list[Detector] | None = None
    identity: dict[str, Any] | None = None  # published in GET /v1/info as `model` (see served_identity)
    shared: Path | None = None
    """The state directory the worker processes of one server share (modelinv.serve.workers): rate buckets and the
    query log's window of recent inputs; None for a server of one process. `log` must have been opened with it."""


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
    if declared.isascii() and declared.isdigit() and int(declared) > limit:  # isdigit alone admits '²', which int() refuses
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
    app = FastAPI(
        title="modelinv serve", version="1", description="A model behind API keys, rate limits and a query monitor.", openapi_url=None, docs_url=None, redoc_url=None
    )
    model, observer = served.observer.model, served.observer
    model.eval()
    device = observer.device
    limiter = SharedLimiter(served.shared / "limits.sqlite", clock) if served.shared is not None else Limiter(clock)
    workers = anyio.CapacityLimiter(threads or available_cores())
    defense = observer.defense
    decimals = defense.params.decimals if defense is not None and defense.name == "round" else None
    info = {"model": served.identity, "input_shape": list(served.limits.input_shape), "exposure": describe(observer), "max_batch": served.limits.max_batch,
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
            with torch.no_grad():  # as observer.intercept, less its model.eval() per call (done once above)
                output = torch.cat([observer.observe(part.to(device)) for part in x.split(512)])
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
        reason = "not found" if exc.status_code == 404 else "method not allowed" if exc.status_code == 405 else "request refused"
        return error(exc.status_code, reason, "http", exc.headers)  # a 405 keeps its Allow header

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        return error(500, "internal error", "internal")

    @app.get("/healthz", summary="Liveness: no key needed", response_model=None, responses=answer_of(HEALTH, "the server is up"))
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/v1/info", summary="Input shape, exposure and limits (needs a key)", response_model=None, responses=answer_of(INFO, "what is served") | refusals(401))
    async def get_info(key: ApiKey = Depends(api_key)) -> dict:
        return info

    @app.post(
        "/v1/predict",
        summary="Answer a batch as the exposure and output defense allow",
        openapi_extra={"requestBody": predict_body(served.limits, detailed=False)},
        response_model=None,
        responses=answer_of(PREDICTION, "the outputs, in the requested form") | refusals(400, 401, 413, 415, 422, 429),
    )
    async def predict(request: Request, key: ApiKey = Depends(api_key)) -> JSONResponse:
        if not limiter.take_request(key):
            raise Refused(429, "rate limit exceeded", "rate_limited", {"Retry-After": f"{limiter.retry_after(key):.3f}"})
        check_content_type(request.headers.get("content-type"))
        body = await read_body(request, served.limits.max_body_bytes)
        return await anyio.to_thread.run_sync(predict_batch, key, body, limiter=workers)

    @app.get("/v1/alerts", summary="Keys the monitor flags, with evidence (admin key)", response_model=None, responses=answer_of(ALERTS, "the flagged keys") | refusals(401, 403))
    def alerts(key: ApiKey = Depends(admin_key)) -> dict:
        return {"alerts": [asdict(a) for a in scan(served.log.path, served.detectors)]}

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi(credentials: HTTPAuthorizationCredentials | None = Security(bearer)) -> JSONResponse:
        """The OpenAPI schema; with a valid key, the request body described down to the input shape."""
        schema = app.openapi()
        if served.keys.verify(credentials.credentials if credentials is not None else None) is not None:
            schema = copy.deepcopy(schema)
            schema["paths"]["/v1/predict"]["post"]["requestBody"] = predict_body(served.limits, detailed=True)
        return JSONResponse(schema)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - Swagger UI")

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(openapi_url="/openapi.json", title=f"{app.title} - ReDoc")

    return app
