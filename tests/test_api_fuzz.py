"""Schema fuzzing of the request bodies: schemathesis generates bodies from the server's own OpenAPI document, valid
and invalid (wrong types, missing fields, out-of-range values), and sends them to the app. No answer is a 5xx, and
every 4xx carries the OpenAI error body. The engine is the tiny model with a short context, so that a valid body
runs to its end quickly."""
from collections import Counter, defaultdict

import pytest

schemathesis = pytest.importorskip("schemathesis", reason="the test extra is not installed: pip install -e .[test]")
pytest.importorskip("fastapi", reason="the server's extra is not installed: pip install -e .[serve]")
from hypothesis import HealthCheck, settings  # noqa: E402

from swiftllm import EngineConfig, LLMEngine  # noqa: E402
from swiftllm.server.api.app import build_app  # noqa: E402
from swiftllm.server.api.engine_client import LocalEngineClient  # noqa: E402
from tests.server_support import with_chat_template  # noqa: E402

ERROR_FIELDS = {"message", "type", "param", "code"}
STATUSES: dict[str, Counter] = defaultdict(Counter)     # path -> status -> count, over the fuzzing run


@pytest.fixture(scope="module")
def fuzzed_client(tiny_llama, tmp_path_factory):
    model = with_chat_template(tiny_llama, str(tmp_path_factory.mktemp("fuzz_chat")))
    client = LocalEngineClient(LLMEngine(EngineConfig(model=model, num_kv_blocks=256, block_size=8, max_model_len=48)),
                               "tiny")
    client.start()
    yield client
    client.shutdown()


@pytest.fixture(scope="module")
def api_schema(fuzzed_client):
    return schemathesis.openapi.from_asgi("/openapi.json", build_app(fuzzed_client, admission_limit=64))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_5xx_and_every_4xx_has_the_openai_error_body(case, fuzzed_client):
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
        case.body["model"] = "tiny"     # otherwise a random name makes every body a model_not_found 400
    response = case.call()
    STATUSES[case.path][response.status_code] += 1
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        assert set(response.json()["error"]) == ERROR_FIELDS, response.text
    else:
        assert response.status_code == 200
    assert fuzzed_client.loop.last_step_error is None


def test_the_fuzzing_reached_both_accepted_and_refused_bodies():
    """Reads what the fuzzing test above recorded (pytest runs a file's tests in order)."""
    for path in ("/v1/completions", "/v1/chat/completions"):
        assert STATUSES[path][200] > 0 and STATUSES[path][400] > 0, dict(STATUSES)
