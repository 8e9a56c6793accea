"""`modelinv serve` on a real uvicorn server on 127.0.0.1: keys, limits, input validation, the HTTP oracle
and the query monitor. All load goes to loopback and is bounded in count."""

import base64
import io
import json
import pickle
import threading

import httpx
import numpy as np
import pytest
import torch

from helpers import assert_one_line_error, cli
from modelinv.attacks import ATTACKS, Targets
from modelinv.errors import AccessDenied, ModelinvError
from modelinv.oracle import RemoteOracle, Scores, ThreatModel
from modelinv.serve.app import Served, create_app
from modelinv.serve.background import BackgroundServer
from modelinv.serve.decode import Limits, encode_npy
from modelinv.serve.exposure import build_observer
from modelinv.serve.keys import ApiKey, KeyStore
from modelinv.serve.limits import Limiter
from modelinv.serve.ood import FeatureStats
from modelinv.serve.querylog import QueryLog


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    return tmp_path_factory.mktemp("serve") / "serve.sqlite"


@pytest.fixture(scope="module")
def keys(db):
    store = KeyStore(db)
    made = {
        "attacker": store.create("attacker")[0],
        "victim": store.create("victim")[0],
        "benign": store.create("benign")[0],
        "admin": store.create("admin", admin=True)[0],
        "limited": store.create("limited", rate=1.0, burst=2)[0],
        "budgeted": store.create("budgeted", budget=3)[0],
        "revoked": store.create("revoked")[0],
        "steady": store.create("steady")[0],
        "prober": store.create("prober")[0],
        "noise": store.create("noise")[0],
        "sweeper": store.create("sweeper")[0],
    }
    store.close()
    return made


class FakeClock:
    """A monotonic clock that moves only when a test advances it: rate limits without sleeping or racing the wall clock."""

    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(scope="module")
def clock():
    """The clock of the served application's rate limiter (see `url`): it stands still unless a test advances it."""
    return FakeClock()


@pytest.fixture(scope="module")
def url(small_lenet, mnist_splits, db, keys, clock):
    reference = mnist_splits.private_train
    served = Served(build_observer(small_lenet, "probs"), Limits(reference.input_shape, max_batch=512, max_body_bytes=4 * 2**20), KeyStore(db), QueryLog(db, FeatureStats.fit(small_lenet, reference)))
    with BackgroundServer(create_app(served, clock=clock)) as address:
        yield address
    served.log.close()


def post(url, key, body, **kw):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(f"{url}/v1/predict", headers=headers, trust_env=False, timeout=30, **kw, **({"json": body} if not isinstance(body, bytes) else {"content": body}))


def npy_body(array):
    return {"npy": encode_npy(array)}


@pytest.fixture(scope="module")
def test_images(mnist_splits):
    return mnist_splits.private_test.x.numpy()


def test_health_info_and_openapi_without_leaks(url, keys):
    assert httpx.get(f"{url}/healthz", trust_env=False).json() == {"status": "ok"}
    info = httpx.get(f"{url}/v1/info", headers={"Authorization": f"Bearer {keys['attacker']}"}, trust_env=False).json()
    assert info["input_shape"] == [1, 28, 28] and info["exposure"] == {"observe": "probs", "layer": None, "provides": ["label", "probs"], "defense": None}
    assert "/v1/predict" in httpx.get(f"{url}/openapi.json", trust_env=False).json()["paths"]


def test_missing_wrong_and_revoked_keys_get_401_with_nothing_about_the_model(url, keys, db, capsys, test_images):
    body = npy_body(test_images[:1])
    assert post(url, keys["revoked"], body).status_code == 200
    code, out, _ = cli(capsys, "keys", "revoke", keys["revoked"].split("_")[1], "--db", db)
    assert code == 0 and "revoked key" in out
    for key in (None, "mik_nope_nope", keys["attacker"][:-2] + "xx", keys["revoked"]):
        response = post(url, key, body)
        assert response.status_code == 401
        assert response.json() == {"error": "missing, unknown or revoked API key", "code": "unauthorized"}
        assert response.headers["www-authenticate"] == "Bearer"
    basic = httpx.post(f"{url}/v1/predict", json=body, headers={"Authorization": f"Basic {keys['attacker']}"}, trust_env=False)
    assert basic.status_code == 401 and basic.json()["code"] == "unauthorized" and basic.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/v1/info", trust_env=False).status_code == 401
    assert httpx.get(f"{url}/v1/alerts", trust_env=False).status_code == 401
    assert "HTTPBearer" in httpx.get(f"{url}/openapi.json", trust_env=False).json()["components"]["securitySchemes"]


def test_keys_are_stored_hashed_and_listed_without_tokens(db, keys, capsys):
    raw = b"".join(path.read_bytes() for path in db.parent.glob(f"{db.name}*"))  # the database and, while open, its WAL
    for token in keys.values():
        assert token.split("_", 2)[2].encode() not in raw
    code, out, _ = cli(capsys, "keys", "list", "--db", db, "--json")
    listed = {k["name"]: k for k in json.loads(out)}
    assert code == 0 and listed["limited"]["rate"] == 1.0 and listed["admin"]["admin"] and listed["revoked"]["revoked"]
    assert not any(token in out for token in keys.values())


def api_key(name="k", rate=None, burst=None, budget=None):
    return ApiKey(id=name, name=name, admin=False, rate=rate, burst=burst, budget=budget, created=0.0, revoked=None)


def test_limiter_token_bucket_on_a_fake_clock():
    clock = FakeClock()
    limiter = Limiter(clock=clock)
    key = api_key(rate=2.0, burst=3)
    assert [limiter.take_request(key) for _ in range(4)] == [True, True, True, False]  # the burst, then refused
    assert limiter.retry_after(key) == 0.5  # one token, at 2 per second
    clock.advance(0.25)
    assert not limiter.take_request(key) and limiter.retry_after(key) == 0.25  # half a token refilled
    clock.advance(0.25)
    assert limiter.take_request(key) and not limiter.take_request(key)
    clock.advance(100.0)  # refills up to the burst, no further
    assert [limiter.take_request(key) for _ in range(4)] == [True, True, True, False]
    other = api_key("other", rate=2.0)  # a bucket per key; the burst defaults to max(1, rate)
    assert [limiter.take_request(other) for _ in range(3)] == [True, True, False]
    unlimited = api_key("unlimited")
    assert all(limiter.take_request(unlimited) for _ in range(1000)) and limiter.retry_after(unlimited) == 0.0


def test_budget_is_charged_in_the_logging_transaction_and_holds_across_a_restart(tmp_path):
    """A batch is logged and charged at once, or refused with nothing logged; a new log on the same file
    (a restarted server) counts what the old one committed. Row times come from the log's clock."""
    db = tmp_path / "budget.sqlite"
    x, logits, emb = torch.rand(5, 1, 4, 4), torch.randn(5, 3), torch.randn(5, 8)
    log = QueryLog(db, clock=lambda: 123.0)
    assert log.record("k", x[:4], logits[:4], emb[:4], budget=10) and log.used("k") == 4
    log.close()
    log = QueryLog(db, clock=lambda: 456.0)  # restarted
    assert log.record("k", x, logits, emb, budget=10) and log.used("k") == 9, "4 logged before, 5 now: 1 left"
    assert not log.record("k", x[:2], logits[:2], emb[:2], budget=10) and log.used("k") == 9, "refused whole, nothing logged"
    assert log.record("k", x[:1], logits[:1], emb[:1], budget=10) and not log.record("k", x[:1], logits[:1], emb[:1], budget=10)
    assert log.record("free", x, logits, emb) and log.used("free") == 5
    times = [t for (t,) in log.db.execute("SELECT time FROM queries WHERE key_id = 'k' ORDER BY rowid")]
    log.close()
    assert times == [123.0] * 4 + [456.0] * 6


def test_rate_limit_and_budget_give_429(url, keys, clock, test_images):
    """The served limiter reads the fake `clock`: a burst of 2, then 1 request per second of that clock, exactly."""
    body = npy_body(test_images[:1])
    assert [post(url, keys["limited"], body).status_code for _ in range(3)] == [200, 200, 429]
    limited = post(url, keys["limited"], body)
    assert limited.status_code == 429 and limited.json() == {"error": "rate limit exceeded", "code": "rate_limited"}
    assert limited.headers["retry-after"] == "1.000"
    clock.advance(0.5)
    limited = post(url, keys["limited"], body)
    assert limited.status_code == 429 and limited.headers["retry-after"] == "0.500"
    clock.advance(0.5)
    assert [post(url, keys["limited"], body).status_code for _ in range(2)] == [200, 429]
    assert post(url, keys["budgeted"], npy_body(test_images[:2])).status_code == 200
    over = post(url, keys["budgeted"], npy_body(test_images[:2]))
    assert over.status_code == 429 and over.json() == {"error": "query budget exhausted", "code": "budget_exhausted"}
    assert post(url, keys["budgeted"], npy_body(test_images[:1])).status_code == 200, "what is left of the budget stays usable"


def huge_header(image):
    """A float32 .npy whose header declares 7.8e13 inputs of `image`'s shape while carrying one."""
    buffer = io.BytesIO()
    np.save(buffer, image)
    shape = str(image.shape).encode()
    return buffer.getvalue().replace(shape, b"(78000000000000" + shape[shape.index(b","):], 1)


def nested(depth):
    value = [0.5]
    for _ in range(depth):
        value = [value]
    return value


def bad_bodies(image):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    return {
        "not JSON": (b"{not json", 400, "not valid JSON"),
        "pickle": (pickle.dumps(image), 400, "not valid JSON"),
        "object npy": ({"npy": base64.b64encode(buffer.getvalue()).decode()}, 400, "holds Python objects"),
        "npy header of 7.8e13 elements": ({"npy": base64.b64encode(huge_header(image)).decode()}, 400, "declares shape (78000000000000, 1, 28, 28)"),
        "npy shorter than its header": ({"npy": encode_npy(image)[:-8]}, 400, "(3136 bytes) but carries 3130 bytes"),
        "5,000-digit integer": (b'{"inputs": [' + b"7" * 5000 + b"]}", 400, "too many digits"),
        "lists nested 100,000 deep": (b'{"inputs": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400, "nested too deeply"),
        "lists nested 900 deep": ({"inputs": nested(900)}, 422, "nested too deeply"),
        "bad base64": ({"npy": "@@@"}, 400, "not a base64-encoded .npy"),
        "no inputs": ({"format": "json"}, 400, "exactly one of 'inputs' or 'npy'"),
        "wrong shape": (npy_body(image[:, :, :27]), 422, "must have shape (N, 1, 28, 28), not (1, 1, 27, 28)"),
        "wrong dtype": (npy_body(image.astype(np.float64)), 422, "dtype must be float32, not float64"),
        "strings": ({"inputs": [["a"] * 28]}, 422, "numbers only"),
        "ragged": ({"inputs": [[[0.0] * 28] * 28, [[0.0] * 27]]}, 422, "ragged"),
        "NaN": (npy_body(np.where(image > 0.5, np.nan, image).astype(np.float32)), 422, "NaN or infinite"),
        "inf": (npy_body(np.where(image > 0.5, np.inf, image).astype(np.float32)), 422, "NaN or infinite"),
        "out of range": (npy_body(image * 2 - 0.5), 422, "must lie in [0, 1]"),
        "batch too large": (npy_body(np.repeat(image, 513, 0)), 413, "batch of 513 inputs; allowed 1 to 512"),
        "body too large": (npy_body(np.repeat(image, 1500, 0)), 413, "exceeds the limit of 4194304"),
        "empty batch": (npy_body(image[:0]), 422, "batch of 0 inputs"),
    }


def test_each_malformed_input_gets_a_4xx_one_line_reason_while_a_valid_client_keeps_getting_answers(url, keys, test_images):
    answered, started, stop = [], threading.Event(), threading.Event()

    def steady():
        with httpx.Client(trust_env=False, timeout=30) as client:
            for i in range(400):
                if stop.is_set():
                    return
                r = client.post(f"{url}/v1/predict", json={"inputs": test_images[i % 50 : i % 50 + 1].tolist()}, headers={"Authorization": f"Bearer {keys['steady']}"})
                answered.append(r.status_code)
                started.set()

    worker = threading.Thread(target=steady)
    worker.start()
    try:
        assert started.wait(timeout=60), "the valid client got no answer"  # it is under way before the malformed bodies start
        for name, (body, status, reason) in bad_bodies(test_images[:1]).items():
            response = post(url, keys["attacker"], body)
            assert response.status_code == status, name
            assert reason in response.json()["error"] and "\n" not in response.json()["error"], name
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
            body = json.dumps(npy_body(test_images[:1]))
            response = httpx.post(f"{url}/v1/predict", content=body, headers={"Authorization": f"Bearer {keys['attacker']}", "Content-Type": content_type}, trust_env=False)
            assert response.status_code == 415 and "Content-Type must be application/json" in response.json()["error"], content_type
        response = httpx.post(f"{url}/v1/predict", content=body, headers={"Authorization": f"Bearer {keys['attacker']}", "Content-Type": "application/json; charset=utf-8"}, trust_env=False)
        assert response.status_code == 200
    finally:
        stop.set()
        worker.join(timeout=60)
    assert not worker.is_alive() and answered and set(answered) == {200}
    assert post(url, keys["steady"], {"inputs": test_images[:3].tolist(), "format": "npy"}).status_code == 200


@pytest.fixture(scope="module")
def attacked(url, keys, small_lenet, mnist_splits):
    """inverse-net over HTTP (attacker key; victim traffic under the victim's key) and in process, same seed."""
    public = mnist_splits.public.subset(torch.arange(1200))
    victims = mnist_splits.private_test.x[:8]
    remote = RemoteOracle(url, keys["attacker"], victim_key=keys["victim"])
    over_http = ATTACKS.get("inverse-net")(epochs=2)(ThreatModel(observer=remote), Targets(remote.intercept(victims)), public, seed=3)
    local = Scores(small_lenet, "probs")
    in_process = ATTACKS.get("inverse-net")(epochs=2)(ThreatModel(observer=local), Targets(local.intercept(victims)), public, seed=3)
    return over_http, in_process


def test_inverse_net_over_http_equals_the_in_process_run(attacked):
    over_http, in_process = attacked
    assert over_http.meta["queries"] == in_process.meta["queries"] == 1200
    assert torch.equal(over_http.images, in_process.images)


def test_remote_oracle_counts_its_budget_and_reports_refused_keys(url, keys, test_images):
    oracle = RemoteOracle(url, keys["attacker"], budget=2)
    oracle(torch.from_numpy(test_images[:2]))
    with pytest.raises(ModelinvError, match="query budget exhausted: 2 allowed"):
        oracle(torch.from_numpy(test_images[:1]))
    with pytest.raises(AccessDenied, match="refused the API key"):
        RemoteOracle(url, "mik_nope_nope")


def test_monitor_flags_attack_traffic_and_not_the_benign_workload(url, keys, db, attacked, test_images, mnist_splits, capsys):
    order = np.random.default_rng(0).permutation(len(test_images))[:200]
    with httpx.Client(trust_env=False, timeout=30) as client:
        for i in order:  # benign: held-out test images, one per request, in random order
            assert client.post(f"{url}/v1/predict", json=npy_body(test_images[i : i + 1]), headers={"Authorization": f"Bearer {keys['benign']}"}).status_code == 200
    rng = np.random.default_rng(1)
    probes = np.clip(test_images[:1] + rng.normal(0, 0.005, (40, 1, 28, 28)), 0, 1).astype(np.float32)
    assert post(url, keys["prober"], npy_body(probes)).status_code == 200  # finite-difference probes around one image
    assert post(url, keys["noise"], npy_body(rng.random((60, 1, 28, 28), dtype=np.float32))).status_code == 200
    y = mnist_splits.private_test.y.numpy()
    sweep = np.concatenate([np.flatnonzero(y == c)[:20] for c in range(5)])  # 20 images of class 0, then of class 1, ...
    assert post(url, keys["sweeper"], npy_body(test_images[sweep])).status_code == 200
    alerts = httpx.get(f"{url}/v1/alerts", headers={"Authorization": f"Bearer {keys['admin']}"}, trust_env=False).json()["alerts"]
    flagged = {a["key_name"]: a["evidence"] for a in alerts}
    assert "volume" in flagged["attacker"]
    assert "perturbation" in flagged["prober"] and "ood" in flagged["noise"] and "class-sweep" in flagged["sweeper"]
    assert "benign" not in flagged and "victim" not in flagged
    code, out, _ = cli(capsys, "monitor", db)
    assert code == 0 and "'attacker'" in out and "queries within 60 s (limit 1000)" in out and "'benign'" not in out
    assert httpx.get(f"{url}/v1/alerts", headers={"Authorization": f"Bearer {keys['attacker']}"}, trust_env=False).status_code == 403


def test_output_defense_is_applied_server_side_by_the_same_code_as_in_process(small_lenet, db, keys, test_images):
    from modelinv.defenses import build_defense

    observer = build_observer(small_lenet, "probs", "round", {"decimals": 1})
    served = Served(observer, Limits((1, 28, 28)), KeyStore(db), QueryLog(db))
    with BackgroundServer(create_app(served)) as address:
        remote = RemoteOracle(address, keys["attacker"])
        assert remote.defense.name == "round" and ThreatModel(observer=remote).describe() == "probs under round"
        x = torch.from_numpy(test_images[:20])
        assert torch.equal(remote(x), Scores(small_lenet, "probs", defense=build_defense("round", {"decimals": 1}))(x))
        as_json = post(address, keys["attacker"], {"inputs": test_images[:20].tolist()}).json()["outputs"]
        assert all(v == round(v, 1) for row in as_json for v in row), "rounded outputs are served as the decimal numbers (0.9, not 0.8999999761581421)"
        assert np.array_equal(np.array(as_json, dtype=np.float32), remote(x).numpy())
    served.log.close()


def test_exposures_and_their_errors(small_lenet):
    top = build_observer(small_lenet, "top-k:3")
    assert top.kind == "probs" and top.defense.name == "top-k" and top.defense.params.k == 3
    assert build_observer(small_lenet, "features:relu2").layer == "relu2"
    for expose, message in [
        ("top-k:x", "top-k needs a positive integer K"),
        ("softmax", "invalid '--expose': 'softmax'"),
        ("features", "invalid '--expose': 'features'"),
        ("features:nope", "has no layer 'nope'"),
    ]:
        with pytest.raises(ModelinvError, match=message):
            build_observer(small_lenet, expose)
    with pytest.raises(ModelinvError, match="already applies the top-k defense"):
        build_observer(small_lenet, "top-k:2", "round")
    with pytest.raises(ModelinvError, match="training defense"):
        build_observer(small_lenet, "probs", "nopeek")
    with pytest.raises(ModelinvError, match="perturbs features"):
        build_observer(small_lenet, "probs", "laplace-noise")


def test_an_experiment_observes_a_served_model_with_the_key_from_the_environment(url, keys, small_lenet, monkeypatch, tmp_path):
    from modelinv.experiment.config import ExperimentConfig
    from modelinv.experiment.runner import build_threat

    def config(**access):
        return ExperimentConfig(attack={"name": "inverse-net"}, access={"endpoint": url, "key_env": "SERVE_TEST_KEY", **access})

    with pytest.raises(ModelinvError, match="set the environment variable SERVE_TEST_KEY"):
        build_threat(config(observe="probs"), small_lenet)
    monkeypatch.setenv("SERVE_TEST_KEY", keys["attacker"])
    threat, _ = build_threat(config(observe="probs", query_budget=10), small_lenet)
    assert isinstance(threat.observer, RemoteOracle) and threat.observer.budget == 10 and threat.describe() == "probs"
    assert keys["attacker"] not in str(config(observe="probs").model_dump())
    with pytest.raises(ModelinvError, match="serves probs, not features at relu2"):
        build_threat(config(observe="features", layer="relu2"), small_lenet)
    key_file = tmp_path / "key"
    key_file.write_text(keys["revoked"] + "\n")
    with pytest.raises(AccessDenied, match="refused the API key"):
        build_threat(config(observe="probs", key_file=str(key_file)), small_lenet)


def test_cli_errors_are_one_line(small_lenet, tmp_path, capsys):
    from modelinv.models.store import save_checkpoint

    checkpoint = save_checkpoint(tmp_path / "lenet", small_lenet, {})
    code, _, err = cli(capsys, "serve", "--model", tmp_path / "missing", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "checkpoint not found")
    code, _, err = cli(capsys, "serve", "--model", checkpoint, "--expose", "top-k:x", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "top-k needs a positive integer K")
    code, _, err = cli(capsys, "serve", "--model", checkpoint, "--defense", "round", "--defense-param", "decimal=2", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "unknown field 'defense.params.decimal'")
    for flag, value, message in [("--port", "99999", "invalid '--port': must be 1 to 65535, not 99999"), ("--port", "0", "not 0"),
                                 ("--max-batch", "0", "invalid '--max-batch'"), ("--max-body-mb", "-1", "invalid '--max-body-mb'"),
                                 ("--max-body-mb", "nan", "invalid '--max-body-mb'"), ("--max-body-mb", "inf", "invalid '--max-body-mb'"),
                                 ("--threads", "0", "invalid '--threads'")]:
        code, _, err = cli(capsys, "serve", "--model", tmp_path / "missing", "--db", tmp_path / "flags.sqlite", flag, value)
        assert_one_line_error(code, err, message)  # before the checkpoint is looked at
    assert not (tmp_path / "flags.sqlite").exists()
    code, _, err = cli(capsys, "monitor", tmp_path / "none.sqlite")
    assert_one_line_error(code, err, "serving database not found")
    code, _, err = cli(capsys, "monitor", tmp_path / "s.sqlite", "--set", "volume.max_querie=5")
    assert_one_line_error(code, err, "unknown field 'monitor.volume.max_querie'; did you mean 'max_queries'")
    code, _, err = cli(capsys, "keys", "list", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "serving database not found")
    code, out, _ = cli(capsys, "keys", "create", "--name", "x", "--budget", "5", "--db", tmp_path / "s.sqlite")
    assert code == 0 and out.strip().splitlines()[-1].startswith("mik_")
    code, _, err = cli(capsys, "keys", "revoke", "abc", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "unknown key id 'abc'")
    code, _, err = cli(capsys, "keys", "create", "--name", "y", "--rate", "0", "--db", tmp_path / "s.sqlite")
    assert_one_line_error(code, err, "invalid 'rate'")


def test_ood_statistics_separate_noise_from_held_out_images_and_fit_deterministically(small_lenet, mnist_splits, test_images):
    """Ledoit-Wolf covariance and PCA subspace (scikit-learn): held-out images mostly score below 1, uniform noise above."""
    stats = FeatureStats.fit(small_lenet, mnist_splits.private_train)
    again = FeatureStats.fit(small_lenet, mnist_splits.private_train)
    assert stats.scales == again.scales and np.array_equal(stats.pca.components_, again.pca.components_)
    noise = np.random.default_rng(0).random((200, 1, 28, 28), dtype=np.float32)
    with torch.no_grad():
        held_out = stats.score(test_images.reshape(len(test_images), -1), small_lenet.embed(torch.from_numpy(test_images)).numpy())
        noisy = stats.score(noise.reshape(200, -1), small_lenet.embed(torch.from_numpy(noise)).numpy())
    assert np.mean(held_out > 1) < 0.1 and np.mean(noisy > 1) > 0.9


def test_remote_runs_check_and_record_the_served_models_identity(small_lenet, db, keys, monkeypatch, tmp_path):
    """GET /v1/info publishes what is served (architecture, shape, classes, weights digest); a remote run refuses a
    served model that is not its config's target and records the identity in its row; --hide-identity hides it."""
    from modelinv.experiment.config import ExperimentConfig
    from modelinv.experiment.runner import build_threat
    from modelinv.models import build_model
    from modelinv.models.store import module_digest, save_checkpoint
    from modelinv.serve.launch import load_served, served_identity

    checkpoint = save_checkpoint(tmp_path / "lenet", small_lenet, {"arch": "lenet", "input_shape": [1, 28, 28], "num_classes": 10})
    served, _ = load_served(checkpoint, "probs", tmp_path / "a.sqlite")
    assert served.identity == {"arch": "lenet", "input_shape": [1, 28, 28], "num_classes": 10, "weights_digest": module_digest(small_lenet)}
    assert served.identity == served_identity(small_lenet, "lenet")
    hidden, _ = load_served(checkpoint, "probs", tmp_path / "b.sqlite", hide_identity=True)
    assert hidden.identity is None
    for s in (served, hidden):
        s.log.close()

    monkeypatch.setenv("SERVE_TEST_KEY", keys["attacker"])
    app = Served(build_observer(small_lenet, "probs"), Limits((1, 28, 28)), KeyStore(db), QueryLog(db), identity=served_identity(small_lenet, "lenet"))
    with BackgroundServer(create_app(app)) as address:
        cfg = ExperimentConfig(attack={"name": "inverse-net"}, access={"endpoint": address, "key_env": "SERVE_TEST_KEY", "observe": "probs"})
        threat, _ = build_threat(cfg, small_lenet)  # the served model is the config's target
        assert threat.observer.identity["weights_digest"] == module_digest(small_lenet)
        torch.manual_seed(1)
        other = build_model("lenet", (1, 28, 28), 10)  # same architecture, other weights
        with pytest.raises(ModelinvError, match=r"serves lenet \(1, 28, 28\) with 10 classes, weights digest .* not the config's target .*\(weights_digest differ\)"):
            build_threat(cfg, other)
        with pytest.raises(ModelinvError, match=r"\(arch, num_classes, weights_digest differ\)"):
            build_threat(cfg.model_copy(update={"target": cfg.target.model_copy(update={"arch": "cnn-split"})}), build_model("cnn-split", (1, 28, 28), 5))
    app.log.close()
