"""The OpenAI-compatible server on loopback: the official client, bad input, the bounded queue, disconnects, a failed
step, the API key, the metrics and the console script."""
import asyncio
import contextlib
import os
import pickle
import signal
import subprocess
import sys
import time

import pytest

httpx = pytest.importorskip("httpx", reason="the server's extra is not installed: pip install -e .[serve]")
openai = pytest.importorskip("openai", reason="the server's extra is not installed: pip install -e .[serve]")
pytest.importorskip("fastapi", reason="the server's extra is not installed: pip install -e .[serve]")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from morph.runtime import MorphConfig, attach_morph  # noqa: E402
from morph.serve import main, morph_attacher  # noqa: E402
from swiftllm import EngineConfig, LLMEngine  # noqa: E402
from swiftllm.server.api.app import build_app  # noqa: E402
from swiftllm.server.api.engine_client import LocalEngineClient  # noqa: E402
from tests.server_support import LOOPBACK, free_port, served, wait_until, with_chat_template  # noqa: E402

ERROR_FIELDS = {"message", "type", "param", "code"}
VLLM_METRICS = ["vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc",
                "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds",
                "vllm:e2e_request_latency_seconds", "vllm:request_queue_time_seconds", "vllm:prompt_tokens",
                "vllm:generation_tokens", "vllm:num_preemptions"]
MORPH_METRICS = ["morphserve:num_quantized_layers", "morphserve:kv_cache_capacity_blocks",
                 "morphserve:layer_transitions", "morphserve:swap_bytes"]


@pytest.fixture(scope="module")
def tiny_chat(tiny_llama, tmp_path_factory) -> str:
    return with_chat_template(tiny_llama, str(tmp_path_factory.mktemp("tiny_chat")))


@contextlib.contextmanager
def local_server(model: str, admission_limit: int = 64, api_key: str | None = None, runtime_config=None,
                 plan=None, **engine_fields):
    """A started client on an engine of ``model`` (with a morph runtime, and a plan applied, if given) and its app."""
    engine = LLMEngine(EngineConfig(model=model, **engine_fields))
    runtime = attach_morph(engine, runtime_config) if runtime_config is not None else None
    if plan is not None:
        runtime.apply(plan)
    client = LocalEngineClient(engine, "tiny", runtime)
    client.start()
    try:
        yield client, build_app(client, admission_limit, api_key)
    finally:
        client.shutdown()


def tiny_server(model: str, **kw):
    return local_server(model, num_kv_blocks=256, block_size=8, **kw)


def assert_error_body(response, status: int) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == ERROR_FIELDS and error["message"]
    return error


def test_official_openai_client_completion_and_chat_streaming_and_not():
    with local_server("embedded", memory_budget_bytes=1 << 30, max_model_len=512) as (_, app), served(app) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == ["tiny"]
        completion = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=8,
                                               temperature=0)
        choice = completion.choices[0]
        assert choice.text.strip() and choice.finish_reason in ("stop", "length")
        assert completion.usage.completion_tokens == len(choice.precision_provenance["precision_versions"]) >= 1
        assert choice.precision_provenance["layer_precisions"] == {"0": ["fp"] * 30}

        streamed = client.completions.create(model="tiny", prompt="The capital of France is", max_tokens=8,
                                             temperature=0, stream=True)
        assert "".join(chunk.choices[0].text for chunk in streamed) == choice.text

        chat = client.chat.completions.create(model="tiny", max_tokens=12, temperature=0,
                                              messages=[{"role": "user", "content": "Say hello."}])
        assert chat.choices[0].message.role == "assistant" and chat.choices[0].message.content.strip()
        chunks = list(client.chat.completions.create(model="tiny", max_tokens=12, temperature=0, stream=True,
                                                     stream_options={"include_usage": True},
                                                     messages=[{"role": "user", "content": "Say hello."}]))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == chat.choices[0].message.content
        assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == chat.usage.completion_tokens


BAD_BODIES = [
    (b"{not json", "invalid_json", None),
    (b"[1, 2]", None, None),
    (b'{"prompt": "w5"}', "missing", "model"),
    (b'{"model": "tiny"}', "missing", "prompt"),
    (b'{"model": "other", "prompt": "w5"}', "model_not_found", "model"),
    (b'{"model": "tiny", "prompt": "w5", "max_tokens": 0}', None, "max_tokens"),
    (b'{"model": "tiny", "prompt": "w5", "max_tokens": -3}', None, "max_tokens"),
    (b'{"model": "tiny", "prompt": "w5", "max_tokens": "5"}', "int_type", "max_tokens"),
    (b'{"model": "tiny", "prompt": "w5", "temperature": -0.5}', None, "temperature"),
    (b'{"model": "tiny", "prompt": "w5", "n": 2}', None, "n"),
    (b'{"model": "tiny", "prompt": "w5", "logprobs": 1}', None, "logprobs"),
    (b'{"model": "tiny", "prompt": "w5", "top_k": 0}', None, "top_k"),
    (b'{"model": "tiny", "prompt": "w5", "stream": "yes"}', None, "stream"),
    (b'{"model": "tiny", "prompt": "w5", "frobnicate": 1}', "extra_forbidden", "frobnicate"),
    (b'{"model": "tiny", "prompt": ' + b'"' + b"w7 " * 600 + b'"}', "context_length_exceeded", "prompt"),
    (b'{"model": "tiny", "prompt": ["w5", "w6"]}', None, "prompt"),
    (b'{"model": "tiny", "prompt": [3, 300]}', None, None),
]


@pytest.mark.parametrize("body, code, param", BAD_BODIES)
def test_bad_completion_bodies_get_a_400_with_the_openai_error_body(tiny_chat, body, code, param):
    with tiny_server(tiny_chat) as (client, app):
        async def post():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                return await http.post("/v1/completions", content=body, headers={"content-type": "application/json"})
        error = assert_error_body(asyncio.run(post()), 400)
        assert error["type"] == "invalid_request_error"
        assert code is None or error["code"] == code
        assert param is None or error["param"] == param
        assert client.engine.requests == {} and client.engine.kv_blocks_used == 0


@pytest.mark.parametrize("messages, param", [([], "messages"), ([{"role": "user"}], "messages.0.content"),
                                             ([{"role": "robot", "content": "hi"}], "messages.0.role"),
                                             ([{"role": "user", "content": 5}], "messages.0.content")])
def test_bad_chat_bodies_get_a_400(tiny_chat, messages, param):
    with tiny_server(tiny_chat) as (_, app):
        async def post():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
                return await http.post("/v1/chat/completions", json={"model": "tiny", "messages": messages})
        assert assert_error_body(asyncio.run(post()), 400)["param"] == param


def _slow_steps(engine, seconds: float):
    engine.add_step_hook(lambda stats: time.sleep(seconds if stats.num_running else 0))


def test_past_the_queue_limit_the_answer_is_429_with_retry_after(tiny_chat):
    with tiny_server(tiny_chat, admission_limit=2) as (client, app), served(app) as url:
        _slow_steps(client.engine, 0.02)
        long = {"model": "tiny", "prompt": "w5 w6", "max_tokens": 200, "ignore_eos": True, "stream": True}
        with httpx.Client(base_url=url, timeout=30) as http, http.stream("POST", "/v1/completions", json=long) as one, \
                http.stream("POST", "/v1/completions", json=long) as two:
            assert one.status_code == two.status_code == 200
            refused = http.post("/v1/completions", json={"model": "tiny", "prompt": "w5", "max_tokens": 2})
            error = assert_error_body(refused, 429)
            assert error["type"] == "rate_limit_error" and int(refused.headers["retry-after"]) >= 1
        assert wait_until(lambda: client.engine.requests == {} and client.engine.kv_blocks_used == 0, 10)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.post("/v1/completions", json={"model": "tiny", "prompt": "w5", "max_tokens": 2}).status_code == 200


def test_a_client_that_disconnects_mid_stream_aborts_its_request_and_frees_its_blocks(tiny_chat):
    with tiny_server(tiny_chat) as (client, app), served(app) as url:
        _slow_steps(client.engine, 0.02)         # 400 tokens would take 8 s
        body = {"model": "tiny", "prompt": "w5 w6 w7", "max_tokens": 400, "ignore_eos": True, "stream": True}
        with httpx.Client(base_url=url, timeout=30) as http, http.stream("POST", "/v1/completions", json=body) as stream:
            first = next(stream.iter_lines())
            assert first.startswith("data: {")
            assert client.engine.kv_blocks_used > 0
            disconnected = time.monotonic()
        assert wait_until(lambda: client.engine.requests == {} and client.engine.kv_blocks_used == 0, 5)
        assert time.monotonic() - disconnected < 4
        assert client.telemetry.latest.num_finished_total == 1


class FailingSteps:
    """A step hook that raises while ``armed``."""

    def __init__(self):
        self.armed = False

    def __call__(self, stats):
        if self.armed and stats.num_running:
            raise RuntimeError("injected step failure")


def test_a_failed_step_ends_requests_in_flight_with_500_and_health_stays_truthful(tiny_chat):
    with tiny_server(tiny_chat) as (client, app), served(app) as url:
        failing = FailingSteps()
        client.engine.add_step_hook(failing)
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/health").json()["engines"][0]["last_step_error"] is None
            failing.armed = True
            whole = http.post("/v1/completions", json={"model": "tiny", "prompt": "w5", "max_tokens": 50})
            assert assert_error_body(whole, 500)["code"] == "engine_step_failed"
            health = http.get("/health")
            assert health.status_code == 200 and "injected step failure" in health.json()["engines"][0]["last_step_error"]
            failing.armed = False
            assert http.post("/v1/completions", json={"model": "tiny", "prompt": "w5", "max_tokens": 3}).status_code == 200
            with http.stream("POST", "/v1/completions", json={"model": "tiny", "prompt": "w5", "max_tokens": 300,
                                                               "ignore_eos": True, "stream": True}) as stream:
                lines = stream.iter_lines()
                assert next(lines).startswith("data: {")
                failing.armed = True
                frames = [line for line in lines if line]
            assert frames[-1] == "data: [DONE]" and '"engine_step_failed"' in frames[-2]
            assert client.engine.requests == {} and client.engine.kv_blocks_used == 0
            client.loop.shutdown()
            down = http.get("/health")
            assert down.status_code == 503 and down.json()["engines"][0]["loop_running"] is False


def test_the_api_key_guards_the_v1_routes(tiny_chat):
    with tiny_server(tiny_chat, api_key="sesame") as (_, app), served(app) as url, httpx.Client(base_url=url) as http:
        body = {"model": "tiny", "prompt": "w5", "max_tokens": 2}
        assert assert_error_body(http.post("/v1/completions", json=body), 401)["type"] == "authentication_error"
        wrong = http.post("/v1/completions", json=body, headers={"Authorization": "Bearer open"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert http.post("/v1/completions", json=body, headers={"Authorization": "Bearer sesame"}).status_code == 200
        assert http.get("/health").status_code == 200 and http.get("/metrics").status_code == 200


def _samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def test_metrics_carry_vllm_names_and_the_morph_transitions(tiny_chat):
    rtn = MorphConfig(policy=None, int4_method="rtn", variant_cache_dir=None)
    with tiny_server(tiny_chat, runtime_config=rtn, plan=["int4", "fp", "int4"]) as (client, app), \
            served(app) as url, httpx.Client(base_url=url) as http:
        answer = http.post("/v1/completions", json={"model": "tiny", "prompt": "w5 w6", "max_tokens": 6,
                                                    "ignore_eos": True}).json()
        origin = answer["choices"][0]["precision_provenance"]
        assert origin["quantized_layers"] == [2] * 6
        version = str(origin["precision_versions"][0])
        assert origin["layer_precisions"] == {version: ["int4", "fp", "int4"]}

        families = _samples(http.get("/metrics").text)
        for name in VLLM_METRICS + MORPH_METRICS:
            assert name in families, name
            assert all(s.labels.get("model_name") == "tiny" and s.labels.get("engine") == "0" for s in families[name])
        value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f}
        labels = (("engine", "0"), ("model_name", "tiny"))
        assert value[("vllm:time_to_first_token_seconds_count", labels)] == 1
        assert value[("vllm:inter_token_latency_seconds_count", labels)] == 5
        assert value[("vllm:generation_tokens_total", labels)] == 6
        assert value[("vllm:prompt_tokens_total", labels)] == 2
        assert value[("morphserve:num_quantized_layers", labels)] == 2
        assert value[("morphserve:layer_transitions_total", (("direction", "down"),) + labels)] == 2
        assert value[("morphserve:swap_bytes_total", labels)] == sum(e.bytes_copied for e in client.runtime.events) > 0
        assert value[("morphserve:kv_cache_capacity_blocks", labels)] == client.engine.kv_capacity


def test_two_apps_keep_their_own_registries(tiny_chat):
    with tiny_server(tiny_chat) as (_, first), tiny_server(tiny_chat) as (_, second):
        assert first.state.server.metrics.registry is not second.state.server.metrics.registry


def test_the_console_script_serves_on_loopback_with_an_api_key(tiny_chat):
    port = free_port()
    command = [sys.executable, "-m", "morph.serve", "serve", "--model", tiny_chat, "--served-model-name",
               "tiny", "--port", str(port), "--policy", "none", "--api-key", "k", "--memory-budget-mib", "64"]
    server = subprocess.Popen(command, env=dict(os.environ), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        url = f"http://{LOOPBACK}:{port}"
        assert wait_until(lambda: _answers(f"{url}/health"), 120, 0.2), "the server did not come up"
        answer = httpx.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                            json={"model": "tiny", "max_tokens": 3, "messages": [{"role": "user", "content": "w9"}]})
        assert answer.status_code == 200 and answer.json()["choices"][0]["message"]["role"] == "assistant"
    finally:
        server.terminate()
        output = server.communicate(timeout=60)[0].decode()
    assert server.returncode in (0, -signal.SIGTERM), output    # uvicorn re-raises the signal once shut down
    assert f"Uvicorn running on http://{LOOPBACK}:{port}" in output
    assert "engine loop stopped, runtime detached" in output


def test_the_console_script_refuses_an_unknown_policy_before_building_an_engine(capsys):
    with pytest.raises(SystemExit) as refused:
        main(["serve", "--policy", "morph_fast"])
    assert refused.value.code == 2
    assert "unknown policy preset 'morph_fast'" in capsys.readouterr().err


def test_the_morph_attacher_pickles_for_ray_replicas():
    assert morph_attacher("none") is None
    attacher = pickle.loads(pickle.dumps(morph_attacher("morph_performance")))
    assert attacher.func is attach_morph
    assert attacher.keywords == {"config": MorphConfig(policy="morph_performance", int4_method="rtn")}


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_an_event_stream_cut_before_its_first_frame_still_cleans_up():
    from swiftllm.server.api.streaming import EventStreamResponse
    cleaned, started = [], []

    async def events():
        started.append(True)
        yield "data: [DONE]\n\n"

    async def cleanup():
        cleaned.append(True)

    async def gone(message):
        raise OSError("the client went away")

    async def receive():
        return {"type": "http.disconnect"}

    response = EventStreamResponse(events(), cleanup)
    with pytest.raises(Exception):
        asyncio.run(response({"type": "http", "asgi": {"spec_version": "2.4"}}, receive, gone))
    assert started == [] and cleaned == [True]
