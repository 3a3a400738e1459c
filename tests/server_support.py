"""A real uvicorn server on a free loopback port, run in a thread of the test process, and a tiny chat model."""
import contextlib
import json
import os
import shutil
import socket
import threading
import time

import uvicorn

LOOPBACK = "127.0.0.1"
CHAT_TEMPLATE = ("{% for m in messages %}w3 {{ m['content'] }} w4 {% endfor %}"
                 "{% if add_generation_prompt %}w5{% endif %}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def served(app, startup_timeout_s: float = 30.0):
    """Serve ``app`` on loopback until the block ends; yields the base URL."""
    config = uvicorn.Config(app, host=LOOPBACK, port=free_port(), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield f"http://{LOOPBACK}:{config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def with_chat_template(model_folder: str, destination: str) -> str:
    """A copy of an HF model folder whose tokenizer has a (word-level) chat template."""
    shutil.copytree(model_folder, destination, dirs_exist_ok=True)
    config_path = os.path.join(destination, "tokenizer_config.json")
    with open(config_path) as f:
        config = json.load(f)
    config["chat_template"] = CHAT_TEMPLATE
    with open(config_path, "w") as f:
        json.dump(config, f)
    return destination


def wait_until(condition, timeout_s: float, interval_s: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()
