"""Property-based fuzzing of `modelinv serve`'s HTTP side: the request decoder (modelinv.serve.decode) under
hypothesis, and the application against its own OpenAPI schema under schemathesis, in process (ASGI).

The decoder either returns a batch of the declared input shape, float32, finite and in range, equal to what
was sent, or raises its documented client error (BadInput with a 4xx status and a one-line reason); never
another exception. The application never answers 5xx, answers only the status codes its schema documents,
and its bodies conform to the schema. Every run is derandomized and bounded (at most 150 examples a property,
40 an operation and mode), on a tiny untrained model: the same code gives the same examples. (Hypothesis also
draws constants from the project's own loaded modules, so a change elsewhere in the code, or running this file
beside others, may change which examples are drawn; test_mutated_npy_payloads found the parser escapes only
that way, and its strategy names those headers now.)
"""

from __future__ import annotations

import base64
import io
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from modelinv.oracle import wire
from modelinv.serve.decode import BadInput, Limits, check_content_type, parse

SHAPE = (1, 4, 4)
LIMITS = Limits(SHAPE, max_batch=8, max_body_bytes=64 * 2**10)
STATUSES = {400, 413, 415, 422}
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def decode(body: bytes, limits: Limits = LIMITS) -> tuple[torch.Tensor, str] | BadInput:
    """What `parse` makes of `body`: the batch and the answer format, or the BadInput it raised (any other exception propagates)."""
    try:
        x, form = parse(body, limits)
    except BadInput as bad:
        assert bad.status in STATUSES, bad.status
        assert bad.reason and "\n" not in bad.reason and len(bad.reason) < 300, bad.reason
        return bad
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.is_contiguous()
    assert tuple(x.shape[1:]) == limits.input_shape and 1 <= len(x) <= limits.max_batch
    assert torch.isfinite(x).all() and x.min() >= limits.low and x.max() <= limits.high
    assert form in ("json", "npy")
    return x, form


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def npy_request(raw: bytes, **extra) -> bytes:
    return json.dumps({"npy": base64.b64encode(raw).decode(), **extra}).encode()


def valid(array: np.ndarray, limits: Limits = LIMITS) -> bool:
    """The reference verdict on a float32 batch, written independently of the decoder."""
    return (
        array.dtype == np.float32
        and array.ndim == len(limits.input_shape) + 1
        and array.shape[1:] == limits.input_shape
        and 1 <= array.shape[0] <= limits.max_batch
        and bool(np.isfinite(array).all())
        and bool(((array >= limits.low) & (array <= limits.high)).all())
    )


# --- valid batches are accepted exactly; everything else is refused with a 4xx -------------------------------

in_range = st.floats(0.0, 1.0, width=32)
batches = st.integers(1, LIMITS.max_batch).flatmap(lambda n: hnp.arrays(np.float32, (n, *SHAPE), elements=in_range))


@FUZZ
@given(batches, st.sampled_from([None, "json", "npy"]), st.booleans())
def test_a_valid_batch_is_decoded_bit_for_bit_in_either_form(batch, form, as_npy):
    extra = {"format": form} if form else {}
    body = npy_request(npy_bytes(batch), **extra) if as_npy else json.dumps({"inputs": batch.tolist(), **extra}).encode()
    x, answer = decode(body)
    assert answer == form or (form is None and answer == ("npy" if as_npy else "json"))
    assert np.array_equal(x.numpy(), batch) and x.numpy().tobytes() == batch.tobytes()


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(body):
    decode(body)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_as_npy(raw):
    decode(npy_request(raw))


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0.0, 1.0),
    st.text(max_size=8),
)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=40)
KEYS = st.sampled_from(["inputs", "npy", "format", "Inputs", "extra", ""])


@FUZZ
@given(json_values)
def test_arbitrary_json_values(value):
    assert isinstance(decode(json.dumps(value).encode()), BadInput) or isinstance(value, dict)


@FUZZ
@given(st.dictionaries(KEYS, json_values | st.sampled_from(["json", "npy", "JSON", ""]), max_size=4))
def test_arbitrary_json_objects(obj):
    result = decode(json.dumps(obj).encode())
    if not isinstance(result, BadInput):
        assert set(obj) in ({"inputs"}, {"inputs", "format"}) and obj.get("format", "json") in ("json", "npy")


def numbers_of_every_kind():
    return st.one_of(
        st.floats(0.0, 1.0),
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-3, 3),
        st.integers(min_value=-(2**100), max_value=2**100),
        st.sampled_from([2**63, 2**64, -(2**63) - 1, 2**200, 1e39, -0.0, 5e-324]),
        st.booleans(),
        st.none(),
        st.text(max_size=3),
    )


SHAPES = st.sampled_from([(None, *SHAPE)] * 4 + [(None, 4, 4), (None, 1, 4), (None, 1, 4, 4, 1), (None, 1, 3, 4), (None, *SHAPE, 0)])


@st.composite
def nested_lists(draw, leaves=numbers_of_every_kind()):
    """Lists nested to a random depth, of a random shape (often the declared one), regular or made ragged at one place."""
    shape = draw(SHAPES | st.lists(st.integers(0, 4), max_size=6).map(tuple))
    shape = tuple(draw(st.integers(0, LIMITS.max_batch + 2)) if n is None else n for n in shape)
    uniform = draw(st.booleans())
    leaf = draw(leaves) if uniform else None

    def build(dims):
        if not dims:
            return leaf if uniform and draw(st.integers(0, 9)) else draw(leaves)
        return [build(dims[1:]) for _ in range(dims[0])]

    value = build(shape)
    if draw(st.integers(0, 3)) == 0:  # ragged: one entry somewhere loses or gains a level, or is replaced
        node, depth = value, draw(st.integers(0, max(0, len(shape) - 1)))
        for _ in range(depth):
            if not (isinstance(node, list) and node and isinstance(node[0], list)):
                break
            node = node[draw(st.integers(0, len(node) - 1))]
        if isinstance(node, list) and node:
            i = draw(st.integers(0, len(node) - 1))
            node[i] = draw(st.sampled_from([[node[i]], node[i][:-1] if isinstance(node[i], list) else [], 0.5, "x", None, []]))
    return value


def reference_lists(value: object, limits: Limits = LIMITS) -> np.ndarray | None:
    """The batch a nested list means, or None when it is no valid batch: a regular nesting of the declared
    shape whose leaves are all numbers (int or float, never bool), finite and in range."""

    def shape_of(v):
        return (len(v), *shape_of(v[0])) if isinstance(v, list) and v else (0,) if isinstance(v, list) else ()

    shape = shape_of(value)
    if shape[1:] != limits.input_shape or not 1 <= shape[0] <= limits.max_batch:
        return None
    leaves = [value]
    for n in shape:
        if not all(isinstance(v, list) and len(v) == n for v in leaves):
            return None
        leaves = [w for v in leaves for w in v]
    if not all(type(v) in (int, float) for v in leaves):
        return None
    if not all(math.isfinite(v) and limits.low <= v <= limits.high for v in leaves):
        return None
    return np.array(leaves, dtype=np.float32).reshape(shape)


@FUZZ
@given(nested_lists(), st.sampled_from([None, "json", "npy"]))
def test_nested_lists_of_random_depth_shape_and_leaves(inputs, form):
    """Accepted exactly when the reference says the lists are a valid batch, and then equal to it."""
    body = json.dumps({"inputs": inputs, **({"format": form} if form else {})}).encode()
    expected, result = reference_lists(inputs), decode(body)
    if expected is None:
        assert isinstance(result, BadInput), inputs
    else:
        assert not isinstance(result, BadInput), result.reason
        assert np.array_equal(result[0].numpy(), expected)


@FUZZ
@given(nested_lists(leaves=st.floats(0.0, 1.0) | st.integers(0, 1)))
def test_nested_lists_of_valid_numbers(inputs):
    """Mostly well-formed lists: the accepting side of the reference is exercised, not only refusals."""
    expected, result = reference_lists(inputs), decode(json.dumps({"inputs": inputs}).encode())
    assert (expected is None) == isinstance(result, BadInput)
    if expected is not None:
        assert np.array_equal(result[0].numpy(), expected)


@st.composite
def one_leaf_replaced(draw):
    """A valid batch as nested lists with one number replaced by a value of any kind (often still a valid number)."""
    batch = draw(batches).astype(np.float64).tolist()
    node = batch
    for _ in range(len(SHAPE)):
        node = node[draw(st.integers(0, len(node) - 1))]
    node[draw(st.integers(0, len(node) - 1))] = draw(numbers_of_every_kind())
    return batch


@FUZZ
@given(one_leaf_replaced())
def test_one_number_of_a_valid_batch_replaced_by_anything(inputs):
    expected, result = reference_lists(inputs), decode(json.dumps({"inputs": inputs}).encode())
    assert (expected is None) == isinstance(result, BadInput), (inputs, result)
    if expected is not None:
        assert np.array_equal(result[0].numpy(), expected)


def test_the_properties_see_both_verdicts():
    """The list strategy is not degenerate: it yields accepted and refused batches alike (else the property above proves little)."""
    verdicts = set()

    @settings(max_examples=100, deadline=None, derandomize=True, database=None)
    @given(nested_lists(leaves=st.floats(0.0, 1.0) | st.integers(0, 1)))
    def collect(inputs):
        verdicts.add(reference_lists(inputs) is None)

    collect()
    assert verdicts == {True, False}


# --- .npy payloads: every dtype, shape and order, then mutated -----------------------------------------------

dtypes = st.one_of(hnp.floating_dtypes(), hnp.integer_dtypes(), hnp.unsigned_integer_dtypes(), hnp.boolean_dtypes(), hnp.complex_number_dtypes(), st.just(np.dtype(">f4")))


@st.composite
def npy_arrays(draw):
    dtype = draw(dtypes | st.just(np.dtype(np.float32)) | st.just(np.dtype(np.float32)))
    shape = draw(st.sampled_from([(None, *SHAPE), (None, 4, 4), SHAPE, (), (None, 1, 4, 4, 1)]) | hnp.array_shapes(min_dims=0, max_dims=5, max_side=5))
    shape = tuple(draw(st.integers(0, LIMITS.max_batch + 2)) if n is None else n for n in shape)
    elements = st.floats(0.0, 1.0, width=32) if dtype == np.float32 and draw(st.booleans()) else None
    array = draw(hnp.arrays(dtype, shape, elements=elements))
    return np.asfortranarray(array) if draw(st.booleans()) else array


@FUZZ
@given(npy_arrays())
def test_npy_arrays_of_any_dtype_shape_and_order(array):
    result = decode(npy_request(npy_bytes(array)))
    assert isinstance(result, BadInput) != valid(array), (array.dtype, array.shape)
    if not isinstance(result, BadInput):
        assert np.array_equal(result[0].numpy(), array)


@st.composite
def mutated_npy(draw):
    """A valid .npy with its header rewritten, bytes cut or added, or bits flipped."""
    raw = bytearray(npy_bytes(draw(batches)))
    kind = draw(st.sampled_from(["header", "truncate", "append", "flip", "version"]))
    if kind == "header":
        end = raw.index(b"\n") + 1
        header = draw(
            st.sampled_from(
                [
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (78000000000000, 1, 4, 4), }",
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 1, 4, 4), }",
                    "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (1, 1, 4, 4), }",
                    "{'descr': '|O', 'fortran_order': False, 'shape': (1, 1, 4, 4), }",
                    "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (16,), }",
                    "{'descr': ('<f4', (16,)), 'fortran_order': False, 'shape': (1,), }",
                    "{'descr': '<V0', 'fortran_order': False, 'shape': (1, 1, 4, 4), }",
                    "{'descr': '<U0', 'fortran_order': False, 'shape': (), }",
                    "{'descr': 'nonsense', 'fortran_order': False, 'shape': (1,), }",
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5, 1, 4, 4), }",
                    "{'descr': '<f4', 'shape': (1, 1, 4, 4), }",
                    "__import__('os').system('true')",
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 4, 4), 'extra': 1}",
                    "{" * 200,
                    "(" * 300,
                    "[",
                    "{[1]: 2}",
                    "-" * 5000 + "1",
                    "[1, 2]",
                    "",
                ]
            )
            | st.text(max_size=60)
        )
        encoded = header.encode("latin-1", "replace")
        encoded += b" " * ((-len(encoded) - 11) % 64) + b"\n"  # padded as numpy pads: magic, version, length, header to 64 bytes
        raw[8:end] = len(encoded).to_bytes(2, "little") + encoded
    elif kind == "truncate":
        del raw[draw(st.integers(0, len(raw) - 1)) :]
    elif kind == "append":
        raw += draw(st.binary(min_size=1, max_size=64))
    elif kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(raw) - 1))
            raw[i] ^= 1 << draw(st.integers(0, 7))
    else:
        raw[6:8] = bytes(draw(st.sampled_from([(2, 0), (3, 0), (0, 0), (255, 255)])))
    return bytes(raw)


@FUZZ
@given(mutated_npy())
def test_mutated_npy_payloads(raw):
    result = decode(npy_request(raw))
    if not isinstance(result, BadInput):  # a flipped bit inside the data may leave a valid batch: then it is that batch
        array = np.load(io.BytesIO(raw), allow_pickle=False)
        assert valid(array) and np.array_equal(result[0].numpy(), array)


@FUZZ
@given(st.one_of(st.text(max_size=80), st.binary(max_size=60).map(lambda b: base64.b64encode(b).decode() + "="), json_values))
def test_npy_field_of_any_json_value(value):
    assert isinstance(decode(json.dumps({"npy": value}).encode()), BadInput)


# --- sizes, nesting and numbers past the limits --------------------------------------------------------------


@pytest.mark.parametrize("depth", [5, 64, 65, 500, 2000, 100_000])
def test_lists_nested_past_every_limit_are_refused(depth):
    """Up to numpy's 64 dimensions a wrong shape, then too deep for numpy (422), then for the JSON parser (400)."""
    body = b'{"inputs": ' + b"[" * depth + b"0.5" + b"]" * depth + b"}"
    result = decode(body, Limits(SHAPE, max_body_bytes=2**20))
    assert result.status == (400 if depth > 900 else 422)
    assert ("must have shape" if depth <= 64 else "nested too deeply") in result.reason, result.reason


@FUZZ
@given(st.integers(min_value=1, max_value=20_000), st.sampled_from([b"7", b"-7", b"0.", b"1e", b"1e-", b"0.00"]))
def test_long_numbers(digits, prefix):
    decode(b'{"inputs": [[[[' + prefix + b"1" * digits + b"]]]]}")


@FUZZ
@given(st.integers(1, 2 * LIMITS.max_body_bytes))
def test_body_size_limit(size):
    body = json.dumps({"inputs": [[[[0.5] * 4] * 4]], "format": "json"}).encode()
    body = body + b" " * max(0, size - len(body))
    result = decode(body)
    assert isinstance(result, BadInput) == (len(body) > LIMITS.max_body_bytes)
    if len(body) > LIMITS.max_body_bytes:
        assert result.status == 413


@FUZZ
@given(
    st.text(max_size=40)
    | st.sampled_from(["application/json", "APPLICATION/JSON; charset=utf-8", "application/problem+json", "application/jsonx", "text/json", " application/json "])
)
def test_content_types(value):
    media = value.split(";", 1)[0].strip().lower()
    accepted = media == "application/json" or (media.startswith("application/") and media.endswith("+json"))
    try:
        check_content_type(value)
        assert accepted, value
    except BadInput as bad:
        assert not accepted and bad.status == 415 and "\n" not in bad.reason


# --- the application against its OpenAPI schema (schemathesis, in process) ----------------------------------


@pytest.fixture(scope="module")
def served_app(tmp_path_factory):
    """The application over a tiny untrained MLP (1x4x4 inputs, 3 classes), with an ordinary and an admin key."""
    from modelinv.models.mlp import mlp
    from modelinv.serve.app import Served, create_app
    from modelinv.serve.exposure import build_observer
    from modelinv.serve.keys import KeyStore
    from modelinv.serve.querylog import QueryLog

    torch.manual_seed(0)
    db = tmp_path_factory.mktemp("serve-fuzz") / "serve.sqlite"
    keys = KeyStore(db)
    tokens = {
        "user": keys.create("fuzzer")[0],
        "admin": keys.create("admin", admin=True)[0],
        "limited": keys.create("limited", rate=1e-6, burst=1)[0],
        "budgeted": keys.create("budgeted", budget=1)[0],
    }
    log = QueryLog(db)
    served = Served(build_observer(mlp(SHAPE, 3, hidden=(8,)), "probs"), LIMITS, keys, log)
    yield create_app(served, threads=1), tokens
    log.close()
    keys.close()


OPERATIONS = [("GET", "/healthz"), ("GET", "/v1/info"), ("POST", "/v1/predict"), ("GET", "/v1/alerts")]


@pytest.fixture(scope="module")
def api_schema(served_app):
    import schemathesis

    schema = schemathesis.openapi.from_asgi("/openapi.json", served_app[0], headers={"Authorization": f"Bearer {served_app[1]['user']}"})  # with the input shape
    assert sorted((op.ok().method.upper(), op.ok().path) for op in schema.get_all_operations()) == sorted(OPERATIONS), "a new endpoint: add it to OPERATIONS"
    return schema


@pytest.mark.parametrize("method,path,mode", [(*op, mode) for op in OPERATIONS for mode in ("positive", "negative") if op != ("GET", "/healthz") or mode == "positive"])
def test_the_application_conforms_to_its_schema(api_schema, served_app, method, path, mode):
    """Requests generated from the schema, valid ones and invalid ones, with a valid key (the admin key for
    /v1/alerts): never a 5xx, only documented status codes, bodies and headers as the schema says, every
    schema-valid body answered (but for the contents of an 'npy' string, which no schema can describe) and
    every invalid one refused. (/healthz takes nothing a request could get wrong: no negative cases.)"""
    from schemathesis import GenerationMode
    from schemathesis.checks import positive_data_acceptance

    token = served_app[1]["admin" if path == "/v1/alerts" else "user"]
    operation = api_schema[path][method]
    seen = []

    @settings(max_examples=40, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(GenerationMode(mode)))
    def run(case):
        npy = isinstance(case.body, dict) and "npy" in case.body
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=[positive_data_acceptance] if npy else None)
        seen.append(response.status_code)

    run()
    assert seen and max(seen) < 500
    if mode == "positive":
        assert 200 in seen, sorted(set(seen))  # valid requests are answered, not only refused
    elif path == "/v1/predict":
        assert {400, 422} & set(seen) and 401 in seen, sorted(set(seen))  # invalid bodies reach the decoder; requests without a key are refused first


# --- regressions: what the fuzzing found ---------------------------------------------------------------------

ONE = [[[0.5] * 4] * 4]


def test_booleans_among_the_numbers_are_refused():
    """Found probing the decoder beside the properties (test_one_number_of_a_valid_batch_replaced_by_anything covers
    it): numpy reads [true, 0.5] as [1.0, 0.5], so a JSON boolean among numbers was answered as 1 or 0 (lists of
    booleans only were refused, mixed ones not)."""
    for inputs in ([[[[True, 0.5, 0.5, 0.5]] + [[0.5] * 4] * 3]], [ONE, [[[False] * 4] * 4]], [[[[0, 1, True, 1]] * 4]]):
        result = decode(json.dumps({"inputs": inputs}).encode())
        assert isinstance(result, BadInput) and result.status == 422 and "numbers only" in result.reason
    assert not isinstance(decode(json.dumps({"inputs": [[[[0, 1, 0, 1]] * 4]]}).encode()), BadInput), "integers 0 and 1 are numbers"


def test_values_are_range_checked_before_the_cast_to_float32():
    """Found by test_one_number_of_a_valid_batch_replaced_by_anything: -4.5e-116, below the range, was cast to
    float32 first, became -0.0 and was answered; and by the RuntimeWarning the list properties raised: 1e39
    overflowed the cast (inf) and was then called infinite (with warnings as errors, a 500). The range is checked
    before the cast; integers past 64 bits (an object array) are out of range too, not "not numbers"."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for big in (-4.5e-116, -1e-300, 1 + 1e-12, 1e39, -1e300, 2**64, 2**63, -(2**70), 10**400):
            result = decode(json.dumps({"inputs": [[[[big] * 4] * 4]]}).encode())
            assert isinstance(result, BadInput) and result.status == 422 and "must lie in [0, 1]" in result.reason, (big, result)


@pytest.mark.parametrize("header", ["[", "(" * 300, "{[1]: 2}", "-" * 5000 + "1"])
def test_npy_headers_that_break_numpys_parser_are_refused(header):
    """Found by test_mutated_npy_payloads: numpy's .npy header parser lets other exceptions than ValueError out,
    which were 500s: an unclosed bracket (tokenize.TokenError, from its Python 2 header fallback), an unhashable
    dict key (TypeError), 5,000 minus signs (RecursionError)."""
    encoded = header.encode("latin-1")
    encoded += b" " * ((-len(encoded) - 11) % 64) + b"\n"
    raw = b"\x93NUMPY\x01\x00" + len(encoded).to_bytes(2, "little") + encoded + bytes(64)
    result = decode(npy_request(raw))
    assert isinstance(result, BadInput) and result.status == 400 and "'npy' is not a base64-encoded .npy array" in result.reason
    # the same answer from a server reaches RemoteOracle through the same decoder: a WireError, nothing else
    with pytest.raises(wire.WireError, match="not a base64-encoded .npy array"):
        wire.decode_npy(base64.b64encode(raw).decode())


def test_a_content_type_with_a_line_break_gives_a_one_line_reason():
    """Found by test_content_types: the refused media type was quoted raw, line breaks and all."""
    with pytest.raises(BadInput) as refused:
        check_content_type("text/plain\n\rx")
    assert refused.value.status == 415 and "\n" not in refused.value.reason and "\r" not in refused.value.reason


def test_error_responses_are_documented_and_the_input_shape_only_for_key_holders(served_app):
    """Found by schemathesis: the schema documented only 200, while the application answers 400, 401, 403, 413,
    415, 422 and 429 (undocumented status codes), and it took `{}` or any list as a valid body. Now the error
    responses are documented, and a key holder's schema describes `inputs` down to the input shape; without a
    key (or with a wrong one) the schema says nothing about the model, as before (the shape is in GET /v1/info)."""
    from starlette.testclient import TestClient

    with TestClient(served_app[0]) as client:
        anonymous, wrong = client.get("/openapi.json").json(), client.get("/openapi.json", headers={"Authorization": "Bearer mik_x_y"}).json()
        keyed = client.get("/openapi.json", headers={"Authorization": f"Bearer {served_app[1]['user']}"}).json()
        assert client.get("/docs").status_code == client.get("/redoc").status_code == 200
    assert anonymous == wrong and "HTTPBearer" in anonymous["components"]["securitySchemes"]
    for spec in (anonymous, keyed):
        responses = {path: {method: sorted(op["responses"]) for method, op in ops.items()} for path, ops in spec["paths"].items()}
        assert responses == {
            "/healthz": {"get": ["200"]},
            "/v1/info": {"get": ["200", "401"]},
            "/v1/predict": {"post": ["200", "400", "401", "413", "415", "422", "429"]},
            "/v1/alerts": {"get": ["200", "401", "403"]},
        }
        assert spec["paths"]["/v1/info"]["get"]["responses"]["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert {k: v for k, v in keyed["paths"].items() if k != "/v1/predict"} == {k: v for k, v in anonymous["paths"].items() if k != "/v1/predict"}
    public, predict = json.dumps(anonymous), json.dumps(anonymous["paths"]["/v1/predict"])
    assert "4, 4" not in public and str(LIMITS.max_body_bytes) not in public and '"maxItems"' not in predict and '"maximum"' not in predict
    body = keyed["paths"]["/v1/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    inputs = body["oneOf"][0]["properties"]["inputs"]
    assert (inputs["minItems"], inputs["maxItems"]) == (1, LIMITS.max_batch) and all(branch["additionalProperties"] is False for branch in body["oneOf"])
    level, sizes = inputs["items"], []
    while level["type"] == "array":
        sizes.append((level["minItems"], level["maxItems"]))
        level = level["items"]
    assert sizes == [(n, n) for n in SHAPE] and level == {"type": "number", "minimum": 0.0, "maximum": 1.0}


def test_refusals_the_generated_requests_rarely_reach_conform_to_the_schema(api_schema, served_app):
    """403 (an ordinary key on /v1/alerts), 429 with and without Retry-After (rate limit, budget), 413 and 415:
    each documented, and each body an `{"error", "code"}` object."""
    tokens = served_app[1]

    def call(path, method, token, expected, **case):
        operation = api_schema[path][method]
        response = operation.Case(**case).call_and_validate(headers={"Authorization": f"Bearer {token}", **case.get("headers", {})})
        assert response.status_code == expected, response.text
        return response

    batch = {"inputs": [ONE]}
    assert call("/v1/alerts", "GET", tokens["user"], 403).json()["code"] == "forbidden"
    call("/v1/predict", "POST", tokens["limited"], 200, body=batch)
    assert float(call("/v1/predict", "POST", tokens["limited"], 429, body=batch).headers["retry-after"][0]) > 0
    call("/v1/predict", "POST", tokens["budgeted"], 200, body=batch)
    assert "retry-after" not in call("/v1/predict", "POST", tokens["budgeted"], 429, body=batch).headers
    assert call("/v1/predict", "POST", tokens["user"], 413, body={"inputs": [ONE] * (LIMITS.max_batch + 1)}).json()["error"].startswith("batch of 9 inputs")
    assert call("/v1/predict", "POST", tokens["user"], 413, body={"npy": "A" * LIMITS.max_body_bytes}).json()["error"].startswith("body of")
    assert call("/v1/predict", "POST", tokens["user"], 415, body=batch, headers={"Content-Type": "text/plain"}).json()["code"] == "bad_input"


def test_method_not_allowed_keeps_its_allow_header(served_app):
    """Found probing the application beside the fuzzing (schemathesis' unsupported_method check tests the same, but
    only in its coverage phase, which these tests do not run): the error handler rebuilt every HTTP error without
    its headers, so a 405 lost the Allow header RFC 9110 requires."""
    from starlette.testclient import TestClient

    with TestClient(served_app[0]) as client:
        for method, path in (("DELETE", "/v1/predict"), ("PUT", "/v1/info"), ("POST", "/healthz")):
            response = client.request(method, path, headers={"Authorization": f"Bearer {served_app[1]['user']}"})
            assert response.status_code == 405 and response.json() == {"error": "method not allowed", "code": "http"}
            assert response.headers["allow"] in ("POST", "GET"), response.headers


def test_a_content_length_of_non_ascii_digits_is_not_a_server_error(served_app):
    """Found reading the size check while fuzzing the decoder: str.isdigit() admits '²' and other Unicode digits,
    which int() refuses, so a Content-Length of '²' (a latin-1 header byte) was a ValueError and a 500. uvicorn's
    parser refuses such a header itself; the application must not depend on it."""
    import anyio

    body = json.dumps({"inputs": [ONE]}).encode()
    token = served_app[1]["user"].encode()
    for length in ("\u00b2".encode("latin-1"), b"1\xb9", str(len(body)).encode()):
        sent = []

        async def receive():
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message):
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/predict",
            "raw_path": b"/v1/predict",
            "query_string": b"",
            "root_path": "",
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
            "headers": [(b"content-type", b"application/json"), (b"content-length", length), (b"authorization", b"Bearer " + token)],
        }
        anyio.run(served_app[0], scope, receive, send)
        assert sent[0]["status"] == 200, (length, sent)
