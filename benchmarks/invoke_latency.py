#!/usr/bin/env python3
"""Measure lambdasim's cold and warm invoke latency beside a bare Docker baseline.

The script starts `lambdasim serve` on a free loopback port and measures, in one run:

- bare: `docker create` + `start` of the runtime image through docker-py, with the
  options lambdasim uses for a function container (host network, 128 MB memory
  limit, read-only code mount, the handler as command). Each container is removed
  with force after its sample, and the removal is not timed.
- cold: time from the start of a CreateFunction call to the first Invoke result, for
  new functions with distinct names, through boto3.
- warm: sequential invokes of a small payload on one warm function, through boto3
  and through a raw `http.client` keep-alive connection (unsigned POST, which the
  server routes to the Lambda API by its path).
- a raw GetFunctionConfiguration, which touches no container, as the floor of the
  HTTP server and the Lambda API dispatch.

It prints the figures, the machine facts and the ratios against the targets:
warm p50 at most 2 ms, and cold p50 at most 1.5 times the bare create + start p50.

Every request goes to 127.0.0.1 with dummy credentials. Every loop has a fixed
count, and SIGALRM aborts the measurements after `--time-limit` seconds. Then the
cleanup runs, bounded by its own timeouts: the server is always stopped with SIGTERM.

Run: python benchmarks/invoke_latency.py [--warm 200] [--cold 5] [--bare 10] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import platform
import signal
import socket
import sys
import tempfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import docker
import docker.errors
import docker.types
from support import (
    REGION,
    TRUST_POLICY,
    WARM_PAYLOAD,
    BenchmarkError,
    Server,
    TimeLimitExceeded,
    cpu_model,
    elapsed_ms,
    os_name,
    positive_int,
    summarize,
)

IMAGE = "public.ecr.aws/lambda/python:3.12"
RUNTIME = "python3.12"
HANDLER = "lambda_function.handler"
HANDLER_SOURCE = "def handler(e, c):\n    return e\n"
ROLE_NAME = "lambdasim-benchmark-exec"
#: Label on the baseline containers, so that leftovers can be found and removed.
BARE_LABEL = "io.lambdasim.benchmark"

#: Targets: warm invoke p50 at most 2 ms, cold start p50 at most 1.5 x bare create + start p50.
WARM_P50_TARGET_MS = 2.0
COLD_TO_BARE_TARGET = 1.5

#: Seconds one HTTP request or Docker call may take.
REQUEST_TIMEOUT = 30.0


# Machine facts --------------------------------------------------------------------


def machine_facts(engine: docker.DockerClient) -> dict[str, Any]:
    version = engine.version()
    load_1, load_5, load_15 = os.getloadavg()
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "os": os_name(),
        "kernel": platform.release(),
        "docker_server_version": version.get("Version", "unknown"),
        "python_version": platform.python_version(),
        "boto3_version": boto3.__version__,
        "docker_py_version": docker.__version__,
        "load_average_at_start": [load_1, load_5, load_15],
    }


# Bare Docker baseline -------------------------------------------------------------


def measure_bare(
    engine: docker.DockerClient, count: int, code_dir: Path, runtime_api: str
) -> dict[str, list[float]]:
    """Time `containers.create` and `start()` of IMAGE `count` times, sequentially.

    The containers get the options that lambdasim's Docker backend passes for a
    128 MB function. Their runtime connects to `runtime_api`, a socket that never
    sends a response, so it blocks on its first request as a fresh lambdasim runtime
    does. Unlike lambdasim, the baseline does not attach to the container's output.
    """
    samples: dict[str, list[float]] = {"create": [], "start": [], "create_start": []}
    run_id = uuid.uuid4().hex[:8]
    for index in range(count):
        container = None
        try:
            started = time.perf_counter()
            container = engine.containers.create(
                IMAGE,
                command=[HANDLER],
                name=f"lambdasim-bench-bare-{run_id}-{index}",
                environment={"AWS_LAMBDA_RUNTIME_API": runtime_api, "_HANDLER": HANDLER},
                labels={BARE_LABEL: "bare"},
                network_mode="host",
                mem_limit="128m",
                memswap_limit="128m",
                mounts=[
                    docker.types.Mount(
                        target="/var/task", source=str(code_dir), type="bind", read_only=True
                    )
                ],
                detach=True,
            )
            created = time.perf_counter()
            container.start()
            finished = time.perf_counter()
        except docker.errors.ImageNotFound as exc:
            raise BenchmarkError(
                f"Image {IMAGE} is missing ({exc}). Build it with scripts/build-images."
            ) from exc
        finally:
            if container is not None:
                container.remove(force=True)
        samples["create"].append((created - started) * 1000.0)
        samples["start"].append((finished - created) * 1000.0)
        samples["create_start"].append((finished - started) * 1000.0)
    return samples


def remove_bare_leftovers(engine: docker.DockerClient) -> None:
    """Remove baseline containers that an interruption left behind, and name them."""
    leftovers = engine.containers.list(all=True, filters={"label": BARE_LABEL})
    for container in leftovers:
        print(f"removing leftover baseline container {container.name}", file=sys.stderr)
        container.remove(force=True)


@contextmanager
def silent_listener() -> Iterator[str]:
    """Listen on a free loopback port that accepts connections and never sends a response."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        host, port = listener.getsockname()
        yield f"{host}:{port}"
    finally:
        listener.close()


# Through lambdasim ---------------------------------------------------------------


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("lambda_function.py", date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, HANDLER_SOURCE)
    return buffer.getvalue()


def aws_client(service: str, endpoint_url: str) -> Any:
    """Return a boto3 client for the lambdasim endpoint, with dummy credentials and no retries."""
    config = botocore.config.Config(
        # In botocore's client config, "max_attempts" counts retries after the first
        # request, so {"max_attempts": 1} would still retry once.
        retries={"total_max_attempts": 1},
        connect_timeout=REQUEST_TIMEOUT,
        read_timeout=REQUEST_TIMEOUT,
    )
    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )


def create_execution_role(endpoint_url: str) -> str:
    """Create an IAM role that trusts Lambda in the embedded IAM and return its ARN."""
    iam = aws_client("iam", endpoint_url)
    try:
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=TRUST_POLICY)
    finally:
        iam.close()
    return role["Role"]["Arn"]


def check_result(response: dict[str, Any], payload: bytes, expected: bytes, operation: str) -> None:
    if response.get("StatusCode") != 200 or response.get("FunctionError"):
        raise BenchmarkError(
            f"{operation} failed: status {response.get('StatusCode')}, "
            f"function error {response.get('FunctionError')!r}, payload {payload[:300]!r}"
        )
    if json.loads(payload) != json.loads(expected):
        raise BenchmarkError(f"{operation} returned {payload[:300]!r}, expected {expected!r}")


def measure_cold(
    client: Any, count: int, role_arn: str, code: bytes
) -> tuple[dict[str, list[float]], list[str]]:
    """Create `count` new functions and time CreateFunction start to first Invoke result.

    Returns the samples (total, create, first invoke) and the function names.
    """
    samples: dict[str, list[float]] = {"total": [], "create": [], "first_invoke": []}
    names = []
    run_id = uuid.uuid4().hex[:8]
    for index in range(count):
        name = f"bench-cold-{run_id}-{index}"
        event = json.dumps({"cold": index}).encode()
        started = time.perf_counter()
        client.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=role_arn,
            Handler=HANDLER,
            Code={"ZipFile": code},
        )
        created = time.perf_counter()
        response = client.invoke(FunctionName=name, Payload=event)
        payload = response["Payload"].read()
        finished = time.perf_counter()
        check_result(response, payload, event, f"cold invoke of {name}")
        names.append(name)
        samples["total"].append((finished - started) * 1000.0)
        samples["create"].append((created - started) * 1000.0)
        samples["first_invoke"].append((finished - created) * 1000.0)
    return samples, names


def measure_warm_boto3(client: Any, name: str, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = client.invoke(FunctionName=name, Payload=WARM_PAYLOAD)
        payload = response["Payload"].read()
        samples.append(elapsed_ms(started))
        check_result(response, payload, WARM_PAYLOAD, f"warm boto3 invoke of {name}")
    return samples


def measure_raw(
    port: int,
    count: int,
    method: str,
    path: str,
    body: bytes | None,
    check: Callable[[bytes], None],
) -> list[float]:
    """Send `count` unsigned requests on one keep-alive connection and return their times in ms."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    samples = []
    try:
        connection.connect()
        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            started = time.perf_counter()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            samples.append(elapsed_ms(started))
            if response.status != 200:
                raise BenchmarkError(
                    f"raw {method} {path} returned HTTP {response.status}: {payload[:300]!r}"
                )
            check(payload)
    finally:
        connection.close()
    return samples


def measure_warm_raw(port: int, name: str, count: int) -> list[float]:
    def check(payload: bytes) -> None:
        if json.loads(payload) != json.loads(WARM_PAYLOAD):
            raise BenchmarkError(f"raw invoke of {name} returned {payload[:300]!r}")

    path = f"/2015-03-31/functions/{name}/invocations"
    return measure_raw(port, count, "POST", path, WARM_PAYLOAD, check)


def measure_raw_configuration(port: int, name: str, count: int) -> list[float]:
    def check(payload: bytes) -> None:
        if json.loads(payload).get("FunctionName") != name:
            raise BenchmarkError(f"GetFunctionConfiguration of {name} returned {payload[:300]!r}")

    path = f"/2015-03-31/functions/{name}/configuration"
    return measure_raw(port, count, "GET", path, None, check)


# Report ---------------------------------------------------------------------------


def format_row(label: str, summary: dict[str, Any]) -> str:
    return (
        f"{label:<44} {summary['count']:>5} {summary['p50']:>9.2f} {summary['p99']:>9.2f} "
        f"{summary['mean']:>9.2f} {summary['max']:>9.2f}"
    )


def print_report(
    facts: dict[str, Any], figures: dict[str, dict[str, Any]], targets: dict[str, Any]
) -> None:
    print("Machine")
    print(f"  date (UTC)        {facts['date_utc']}")
    print(f"  nproc             {facts['nproc']}")
    print(f"  CPU model         {facts['cpu_model']}")
    print(f"  OS, kernel        {facts['os']}, {facts['kernel']}")
    print(f"  Docker server     {facts['docker_server_version']}")
    print(f"  Python            {facts['python_version']}")
    print(f"  boto3, docker-py  {facts['boto3_version']}, {facts['docker_py_version']}")
    for moment in ("start", "end"):
        load = ", ".join(f"{value:.2f}" for value in facts[f"load_average_at_{moment}"])
        print(f"  load average      {load} (1, 5, 15 min, at {moment})")
    print()

    header = f"{'Measurement (ms)':<44} {'n':>5} {'p50':>9} {'p99':>9} {'mean':>9} {'max':>9}"
    print(header)
    print("-" * len(header))
    rows = [
        ("bare", "create", "bare docker create"),
        ("bare", "start", "bare docker start"),
        ("bare", "create_start", "bare docker create + start"),
        ("cold", "create", "cold: CreateFunction (boto3)"),
        ("cold", "first_invoke", "cold: first Invoke (boto3)"),
        ("cold", "total", "cold: CreateFunction start -> first result"),
        ("warm", "boto3", "warm invoke, boto3"),
        ("warm", "raw", "warm invoke, raw http.client keep-alive"),
        ("warm", "raw_configuration", "GetFunctionConfiguration, raw (no container)"),
    ]
    for group, key, label in rows:
        print(format_row(label, figures[group][key]))
    print()
    print("p50 is the median and p99 the nearest-rank percentile. Cold rows have few samples.")
    print()

    print("Targets")
    warm = targets["warm_p50"]
    cold = targets["cold_to_bare"]
    print(
        f"  warm p50 <= {WARM_P50_TARGET_MS:.1f} ms: boto3 {warm['boto3_ms']:.2f} ms "
        f"({'met' if warm['boto3_met'] else 'not met'}), raw {warm['raw_ms']:.2f} ms "
        f"({'met' if warm['raw_met'] else 'not met'})"
    )
    print(
        f"  cold p50 <= {COLD_TO_BARE_TARGET:.1f} x bare create+start p50: "
        f"{cold['cold_p50_ms']:.1f} / {cold['bare_p50_ms']:.1f} ms = {cold['ratio']:.2f} x "
        f"({'met' if cold['met'] else 'not met'})"
    )


def evaluate_targets(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    boto3_p50 = figures["warm"]["boto3"]["p50"]
    raw_p50 = figures["warm"]["raw"]["p50"]
    cold_p50 = figures["cold"]["total"]["p50"]
    bare_p50 = figures["bare"]["create_start"]["p50"]
    ratio = cold_p50 / bare_p50
    return {
        "warm_p50": {
            "target_ms": WARM_P50_TARGET_MS,
            "boto3_ms": boto3_p50,
            "boto3_met": boto3_p50 <= WARM_P50_TARGET_MS,
            "raw_ms": raw_p50,
            "raw_met": raw_p50 <= WARM_P50_TARGET_MS,
        },
        "cold_to_bare": {
            "target_ratio": COLD_TO_BARE_TARGET,
            "cold_p50_ms": cold_p50,
            "bare_p50_ms": bare_p50,
            "ratio": ratio,
            "met": ratio <= COLD_TO_BARE_TARGET,
        },
    }


# Main -----------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure lambdasim's cold and warm invoke latency beside bare "
        "docker create + start, on 127.0.0.1."
    )
    parser.add_argument(
        "--warm",
        type=positive_int,
        default=200,
        help="number of sequential requests in each warm series: boto3 invoke, raw invoke "
        "and raw GetFunctionConfiguration (default 200)",
    )
    parser.add_argument(
        "--cold",
        type=positive_int,
        default=5,
        help="number of cold starts, each with a new function (default 5)",
    )
    parser.add_argument(
        "--bare",
        type=positive_int,
        default=10,
        help="number of bare docker create + start samples (default 10)",
    )
    parser.add_argument(
        "--time-limit",
        type=positive_int,
        default=300,
        help="seconds after which the run is aborted (default 300)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the figures as one JSON object"
    )
    parser.add_argument(
        "--server-log",
        type=Path,
        metavar="FILE",
        help="write the server's log to FILE and keep it (default: a temporary file)",
    )
    return parser.parse_args(argv)


def on_alarm(signum: int, frame: object) -> None:
    raise TimeLimitExceeded


def run(arguments: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    engine = docker.from_env(timeout=int(REQUEST_TIMEOUT))
    server: Server | None = None
    client = None
    try:
        facts = machine_facts(engine)
        server = Server(work_dir, arguments.server_log)
        server.wait_ready()

        code_dir = work_dir / "bare-code"
        code_dir.mkdir()
        (code_dir / "lambda_function.py").write_text(HANDLER_SOURCE)
        with silent_listener() as runtime_api:
            bare = measure_bare(engine, arguments.bare, code_dir, runtime_api)

        client = aws_client("lambda", server.url)
        role_arn = create_execution_role(server.url)
        cold, names = measure_cold(client, arguments.cold, role_arn, function_zip())
        warm_name = names[-1]
        warm = {
            "boto3": measure_warm_boto3(client, warm_name, arguments.warm),
            "raw": measure_warm_raw(server.port, warm_name, arguments.warm),
            "raw_configuration": measure_raw_configuration(server.port, warm_name, arguments.warm),
        }
    finally:
        # Cleanup must not be cut short by the time limit. Each of its steps is bounded,
        # and the server is stopped even when removing baseline containers fails.
        signal.alarm(0)
        if client is not None:
            client.close()
        try:
            remove_bare_leftovers(engine)
        finally:
            if server is not None:
                status = server.stop()
                if status not in (0, None):
                    print(
                        f"lambdasim exited with status {status}. Log tail:\n{server.log_tail()}",
                        file=sys.stderr,
                    )
            engine.close()

    facts["load_average_at_end"] = list(os.getloadavg())
    samples = {"bare": bare, "cold": cold, "warm": warm}
    figures = {
        group: {key: summarize(values) for key, values in measured.items()}
        for group, measured in samples.items()
    }
    return {
        "machine": facts,
        "settings": {
            "image": IMAGE,
            "runtime": RUNTIME,
            "warm": arguments.warm,
            "cold": arguments.cold,
            "bare": arguments.bare,
        },
        "figures_ms": figures,
        "cold_samples_ms": cold["total"],
        "bare_samples_ms": bare["create_start"],
        "targets": evaluate_targets(figures),
    }


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(arguments.time_limit)
    try:
        with tempfile.TemporaryDirectory(prefix="lambdasim-bench-") as work:
            result = run(arguments, Path(work))
    except TimeLimitExceeded:
        print(
            f"invoke_latency: aborted after the time limit of {arguments.time_limit} s",
            file=sys.stderr,
        )
        return 1
    except (
        BenchmarkError,
        docker.errors.DockerException,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        OSError,
    ) as exc:
        print(f"invoke_latency: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)

    print_report(result["machine"], result["figures_ms"], result["targets"])
    if arguments.json:
        print()
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
