"""``morphserve serve``: the console script (declared in ``setup.py``), and the composition root of the online
server: it sits above both ``swiftllm.server`` (which knows nothing of morph) and ``morph.runtime``, and hands every
served engine its morph runtime through ``ServeConfig.attach_runtime``.
"""
import argparse
import functools
import logging

from morph.runtime import MorphConfig, attach_morph
from swiftllm.server.api_server import DEFAULT_MAX_QUEUED, AttachRuntime, ServeConfig

MiB = 1 << 20
NO_POLICY = "none"


def morph_attacher(policy: str) -> AttachRuntime | None:
    """What attaches a morph runtime under ``policy`` (RTN INT4: AWQ would need a calibration text) to each served
    engine; ``None`` for ``"none"``. A ``functools.partial`` over ``attach_morph``, so that Ray can pickle it to the
    replicas. An unknown policy is a ``ValueError`` here, before any engine is built."""
    if policy == NO_POLICY:
        return None
    return functools.partial(attach_morph, config=MorphConfig(policy=policy, int4_method="rtn"))


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="morphserve", description="MorphServe: an OpenAI-compatible LLM server")
    commands = root.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve a model over HTTP (OpenAI API, /health, /metrics)")
    serve.add_argument("--model", default="embedded", help="'embedded', an HF folder or a .gguf file")
    serve.add_argument("--served-model-name", default=None, help="the name clients send as 'model' (default: --model)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--policy", default="morph_accuracy",
                       help=f"morph policy: morph_accuracy, morph_performance, morph_forecast, or '{NO_POLICY}' to "
                            "serve without morphing")
    serve.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on the /v1 routes")
    serve.add_argument("--max-queued-requests", type=int, default=DEFAULT_MAX_QUEUED,
                       help="requests held beyond what the engines run before answering 429")
    serve.add_argument("--max-num-seqs", type=int, default=64, help="requests one engine runs at once")
    serve.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model's, <= 4096)")
    serve.add_argument("--memory-budget-mib", type=int, default=None, help="device-memory budget of each engine")
    serve.add_argument("--threads", type=int, default=None, help="torch threads of each engine")
    serve.add_argument("--replicas", type=int, default=1, help="engine replicas; > 1 serves on Ray Serve")
    serve.add_argument("--ray-address", default=None, help="join this Ray cluster instead of starting a local one")
    return root


def config_from(args: argparse.Namespace) -> ServeConfig:
    return ServeConfig(
        model=args.model, served_model_name=args.served_model_name, host=args.host, port=args.port,
        api_key=args.api_key, max_queued_requests=args.max_queued_requests, max_num_seqs=args.max_num_seqs,
        max_model_len=args.max_model_len,
        memory_budget_bytes=None if args.memory_budget_mib is None else args.memory_budget_mib * MiB,
        threads=args.threads, replicas=args.replicas, ray_address=args.ray_address,
        attach_runtime=morph_attacher(args.policy))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    args = parser().parse_args(argv)
    try:
        config = config_from(args)
    except ValueError as refused:
        parser().error(str(refused))
    if config.replicas > 1 or config.ray_address is not None:
        if config.ray_address is None:
            from swiftllm.server.replicas.loopback import keep_ray_on_loopback
            keep_ray_on_loopback()
        from swiftllm.server.replicas.ray_app import serve_on_ray
        serve_on_ray(config)
    else:
        from swiftllm.server.api_server import serve
        serve(config)


if __name__ == "__main__":
    main()
