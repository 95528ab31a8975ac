"""The `lambdasim` command."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

import trio

from .. import __version__
from ..config import Config

logger = logging.getLogger("lambdasim.server")


async def serve(config: Config) -> None:
    """Run the simulator and its HTTP endpoint until SIGINT or SIGTERM.

    Prints `lambdasim ready on http://HOST:PORT` once requests are accepted. On
    a signal the server stops and every container it started is removed.
    """
    # The simulator configures moto, so it must exist before moto is imported.
    from ..simulator import Simulator
    from .app import create_app
    from .gateway import Gateway, WSGIBridge
    from .invoke_path import InvokePath
    from .serve import serve_http

    simulator = Simulator(config=config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(simulator.run)
            gateway = Gateway(
                lambda_app=InvokePath(simulator, create_app(simulator)),
                aws_app=WSGIBridge(simulator.services),
            )
            host, port = await nursery.start(
                lambda task_status: serve_http(
                    gateway, host=config.host, port=config.port, task_status=task_status
                )
            )
            simulator.serve_on(host, port)
            print(f"lambdasim ready on http://{host}:{port}", flush=True)
            async for signum in signals:
                logger.info("received %s; stopping", signal.Signals(signum).name)
                break
            nursery.cancel_scope.cancel()
    logger.info("lambdasim stopped")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambdasim",
        description="Run AWS Lambda functions locally in real containers.",
    )
    parser.add_argument("--version", action="version", version=f"lambdasim {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="serve the AWS-compatible endpoint until SIGINT or SIGTERM"
    )
    serve_parser.add_argument(
        "--host", help="address to listen on (LAMBDASIM_HOST, default 127.0.0.1)"
    )
    serve_parser.add_argument(
        "--port", type=int, help="port to listen on (LAMBDASIM_PORT, default 4599)"
    )
    serve_parser.add_argument(
        "--log-level",
        default=os.environ.get("LAMBDASIM_LOG_LEVEL", "INFO"),
        help="logging level (LAMBDASIM_LOG_LEVEL, default INFO)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    logging.basicConfig(
        level=arguments.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = Config.from_env(host=arguments.host, port=arguments.port)
    except ValueError as exc:
        print(f"lambdasim: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(serve, config)
    except OSError as exc:
        print(f"lambdasim: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
