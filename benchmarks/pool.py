#!/usr/bin/env python3
"""Measure lambdasim's container pool: a burst of first invokes, the start limit and warm load.

In one run the script measures:

- burst: 100 concurrent first invokes of one new function whose handler sleeps
  0.2 s, each from its own thread with its own boto3 client. The burst runs for
  each value of LAMBDASIM_MAX_CONCURRENT_STARTS (2, 4, 8 and 16 by default) in
  each round (2 by default), each time on a fresh server. It reports the
  successes, latency p50 and maximum, the peak number of the server's containers
  and the wall time. Then one Invoke with LogType=Tail checks that the
  invocation logs still close.
- warm load: invokes/s and latency of 1 and of 8 concurrent clients for 10 s each,
  on environments warmed first. The clients are boto3 or raw keep-alive
  `http.client` connections that send unsigned POSTs, which the server routes to
  the Lambda API by their path. The 8-client cases run as threads of this process
  and as 8 processes.
- bare round trip: a trio + h11 Runtime API server in this process and a container
  of the same image pointed at it, timed from the event handed out to the
  `/response` received. It is the floor under a warm invoke, and the script prints
  the ratio of the warm invoke p50 to it.

Targets: 100 of 100 burst invokes succeed and none hangs, at least 1,000 warm
invokes/s with 8 clients, and a warm invoke p50 of at most 2 ms.

Every server binds 127.0.0.1, every request goes to 127.0.0.1 with dummy
credentials, and containers use the host network. Every loop is bounded in count
and time. SIGALRM aborts the measurements after `--time-limit` seconds. Then the
cleanup runs, bounded by its own timeouts: the servers are stopped with SIGTERM and
the benchmark's own container is removed.

Run: python benchmarks/pool.py [--burst 100] [--max-starts 2,4,8,16] [--duration 10] [--json]
"""

from __future__ import annotations

import argparse
import functools
import http.client
import io
import json
import multiprocessing
import os
import platform
import queue
import re
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
import docker
import docker.errors
import docker.types
import h11
import trio
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
#: Sleeps for `sleep` seconds when the event has it, and returns the event.
HANDLER_SOURCE = (
    "import time\n"
    "\n"
    "\n"
    "def handler(event, context):\n"
    "    sleep = event.get('sleep')\n"
    "    if sleep:\n"
    "        time.sleep(sleep)\n"
    "    return event\n"
)
ROLE_NAME = "lambdasim-benchmark-pool"
#: Label lambdasim puts on its containers, with the server's process id as value.
OWNER_PID_LABEL = "io.lambdasim.owner-pid"
#: Label on the round-trip container, with the run id as value.
BENCHMARK_LABEL = "io.lambdasim.benchmark-pool"

#: Seconds the handler sleeps in each burst invoke.
BURST_SLEEP = 0.2
#: Targets: warm invokes/s with 8 clients, and warm invoke p50.
WARM_THROUGHPUT_TARGET = 1000.0
WARM_P50_TARGET_MS = 2.0

#: Seconds one HTTP request or Docker call may take, outside the burst.
REQUEST_TIMEOUT = 30.0
#: Seconds one burst invoke may take before it counts as hung.
BURST_CALL_TIMEOUT = 60.0
#: Seconds the whole burst may take, from the release of the threads.
BURST_TIMEOUT = 90.0
#: Seconds between two samples of the server's containers during a burst.
POLL_INTERVAL = 0.1
#: Seconds a LogType=Tail invoke after a burst may take before it counts as hung.
TAIL_PROBE_TIMEOUT = 10.0
#: Seconds the load clients may take to get ready (processes import boto3 first).
LOAD_READY_TIMEOUT = 60.0
#: Upper bound of requests per load client, in case the time check were never reached.
MAX_REQUESTS_PER_CLIENT = 1_000_000
#: Seconds one round-trip event may take, including the container's cold start.
ROUND_TRIP_EVENT_TIMEOUT = 30.0
#: Seconds the whole round-trip measurement may take.
ROUND_TRIP_TIMEOUT = 120.0
ROUND_TRIP_WARMUP = 20
RUNTIME_API_NEXT = "/2018-06-01/runtime/invocation/next"


# Statistics -----------------------------------------------------------------------


class CpuMeter:
    """CPU time used by the server and by the whole machine, from construction to `stop()`."""

    def __init__(self, server_pid: int) -> None:
        self._server_pid = server_pid
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._start = self._read()

    def _process_seconds(self, pid: int) -> float:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            # The command name in brackets may contain spaces: split after it.
            fields = stat.read().rsplit(")", 1)[1].split()
        # utime and stime are fields 14 and 15 of proc(5), the 12th and 13th after the name.
        return (int(fields[11]) + int(fields[12])) / self._ticks

    def _machine_seconds(self) -> tuple[float, float]:
        """Return the busy and total CPU seconds of all cores since boot."""
        with open("/proc/stat", encoding="ascii") as stat:
            values = [int(value) for value in stat.readline().split()[1:]]
        idle = values[3] + values[4]  # idle and iowait
        total = sum(values[:8])  # guest time is already counted in user time
        return (total - idle) / self._ticks, total / self._ticks

    def _read(self) -> dict[str, float]:
        busy, total = self._machine_seconds()
        return {
            "wall": time.perf_counter(),
            "server": self._process_seconds(self._server_pid),
            "machine_busy": busy,
            "machine_total": total,
        }

    def stop(self, client_cpu_seconds: float) -> dict[str, float]:
        """Return the CPU use since construction in cores, where 1.0 is one core busy.

        `client_cpu_seconds` is the CPU time that the load clients measured themselves.
        """
        end = self._read()
        wall = end["wall"] - self._start["wall"]
        machine_total = end["machine_total"] - self._start["machine_total"]
        machine_busy = end["machine_busy"] - self._start["machine_busy"]
        return {
            "wall_s": wall,
            "server_cores": (end["server"] - self._start["server"]) / wall,
            "client_cores": client_cpu_seconds / wall,
            "machine_busy_fraction": machine_busy / machine_total if machine_total > 0 else 0.0,
        }


# Machine facts --------------------------------------------------------------------


def machine_facts(engine: docker.DockerClient) -> dict[str, Any]:
    version = engine.version()
    load_1, load_5, load_15 = os.getloadavg()
    memory_kib = 0
    with open("/proc/meminfo", encoding="ascii") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "memory_gib": round(memory_kib / 1024 / 1024, 1),
        "os": os_name(),
        "kernel": platform.release(),
        "docker_server_version": version.get("Version", "unknown"),
        "python_version": platform.python_version(),
        "boto3_version": boto3.__version__,
        "docker_py_version": docker.__version__,
        "trio_version": trio.__version__,
        "h11_version": h11.__version__,
        "load_average_at_start": [load_1, load_5, load_15],
    }


# The lambdasim server -------------------------------------------------------------


def remove_leftover_containers(engine: docker.DockerClient, label: str) -> list[str]:
    """Remove the containers that carry `label` ("key=value") and return their names."""
    leftovers = engine.containers.list(all=True, filters={"label": label})
    names = []
    for container in leftovers:
        print(f"removing leftover container {container.name} ({label})", file=sys.stderr)
        container.remove(force=True)
        names.append(container.name)
    return names


@contextmanager
def running_server(
    engine: docker.DockerClient,
    work_dir: Path,
    label: str,
    settings: dict[str, str],
    report: dict[str, Any],
) -> Iterator[Server]:
    """Start a server, yield it, and stop it on every way out.

    After the stop, `report` gets the exit status, the stop time and the names of
    containers that the server left behind, which this function removes.
    """
    server = Server(work_dir, label=label, environment=settings)
    try:
        server.wait_ready()
        yield server
    finally:
        status = server.stop()
        report["exit_status"] = status
        report["stop_seconds"] = server.stop_seconds
        if status not in (0, None):
            print(
                f"lambdasim ({label}) exited with status {status}. Log tail:\n{server.log_tail()}",
                file=sys.stderr,
            )
        report["leftover_containers"] = remove_leftover_containers(
            engine, f"{OWNER_PID_LABEL}={server.pid}"
        )


# Lambda API clients ---------------------------------------------------------------


def client_config(read_timeout: float, pool_size: int = 10) -> botocore.config.Config:
    return botocore.config.Config(
        # In botocore's client config, "max_attempts" counts retries after the first
        # request, so {"max_attempts": 1} would still retry once.
        retries={"total_max_attempts": 1},
        connect_timeout=REQUEST_TIMEOUT,
        read_timeout=read_timeout,
        max_pool_connections=pool_size,
    )


def new_session() -> boto3.session.Session:
    """Return a boto3 session with the dummy credentials `test`/`test`."""
    return boto3.session.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name=REGION
    )


def lambda_client(
    session: boto3.session.Session, endpoint_url: str, read_timeout: float = REQUEST_TIMEOUT
) -> Any:
    return session.client("lambda", endpoint_url=endpoint_url, config=client_config(read_timeout))


def function_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("lambda_function.py", date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        archive.writestr(info, HANDLER_SOURCE)
    return buffer.getvalue()


def create_function(server: Server, name: str) -> None:
    """Create an execution role in the embedded IAM and the function `name` with it."""
    session = new_session()
    iam = session.client("iam", endpoint_url=server.url, config=client_config(REQUEST_TIMEOUT))
    client = lambda_client(session, server.url)
    try:
        role = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=TRUST_POLICY)
        client.create_function(
            FunctionName=name,
            Runtime=RUNTIME,
            Role=role["Role"]["Arn"],
            Handler=HANDLER,
            Code={"ZipFile": function_zip()},
        )
    finally:
        iam.close()
        client.close()


def describe_failure(response: dict[str, Any], payload: bytes, expected: bytes) -> str | None:
    """Return why an Invoke response is not the echo of `expected`, or None when it is."""
    if response.get("StatusCode") != 200 or response.get("FunctionError"):
        return (
            f"status {response.get('StatusCode')}, function error "
            f"{response.get('FunctionError')!r}, payload {payload[:200]!r}"
        )
    if payload != expected and json.loads(payload) != json.loads(expected):
        return f"payload {payload[:200]!r}, expected {expected!r}"
    return None


def get_environments(port: int) -> dict[str, Any]:
    """Return the server's `GET /_lambdasim/environments` document."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    try:
        connection.request("GET", "/_lambdasim/environments")
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    if response.status != 200:
        raise BenchmarkError(
            f"GET /_lambdasim/environments returned HTTP {response.status}: {body[:300]!r}"
        )
    return json.loads(body)


# Burst ----------------------------------------------------------------------------


class ContainerMonitor:
    """Samples the server's containers and environments in a thread until stopped.

    Docker is asked for the running containers labelled with the server's pid, and
    the server for its environments by state. Both are sampled every POLL_INTERVAL
    seconds, and sampling stops by itself after `max_seconds`.
    """

    def __init__(self, engine: docker.DockerClient, server: Server, max_seconds: float) -> None:
        self._engine = engine
        self._server = server
        self._max_seconds = max_seconds
        self._stop = threading.Event()
        self.peak_containers = 0
        self.peak_environments = 0
        self.peak_starting = 0
        self.peak_waiting = 0
        self.samples = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ContainerMonitor:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(REQUEST_TIMEOUT)

    def _run(self) -> None:
        label = f"{OWNER_PID_LABEL}={self._server.pid}"
        deadline = time.monotonic() + self._max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                running = self._engine.api.containers(filters={"label": label})
                environments = get_environments(self._server.port)
            except (docker.errors.DockerException, OSError, BenchmarkError) as exc:
                # Keep sampling, but at most a few messages.
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.samples += 1
                self.peak_containers = max(self.peak_containers, len(running))
                self.peak_environments = max(
                    self.peak_environments, len(environments["Environments"])
                )
                self.peak_starting = max(self.peak_starting, environments["Starting"])
                self.peak_waiting = max(self.peak_waiting, environments["Waiting"])
            self._stop.wait(POLL_INTERVAL)


def run_burst(engine: docker.DockerClient, server: Server, name: str, count: int) -> dict[str, Any]:
    """Send `count` concurrent first invokes of `name`, one thread and boto3 client each."""
    session = new_session()
    clients = [lambda_client(session, server.url, BURST_CALL_TIMEOUT) for _ in range(count)]
    barrier = threading.Barrier(count + 1)
    # Per invoke: latency in ms, completion time (perf_counter) and failure or None.
    outcomes: list[tuple[float, float, str | None] | None] = [None] * count

    def invoke(index: int) -> None:
        event = json.dumps({"sleep": BURST_SLEEP, "i": index}).encode()
        try:
            barrier.wait(REQUEST_TIMEOUT)
        except threading.BrokenBarrierError:
            return
        started = time.perf_counter()
        failure: str | None
        try:
            response = clients[index].invoke(FunctionName=name, Payload=event)
            payload = response["Payload"].read()
            failure = describe_failure(response, payload, event)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        finished = time.perf_counter()
        outcomes[index] = ((finished - started) * 1000.0, finished, failure)

    threads = [
        threading.Thread(target=invoke, args=(index,), daemon=True, name=f"burst-{index}")
        for index in range(count)
    ]
    try:
        for thread in threads:
            thread.start()
        with ContainerMonitor(engine, server, BURST_TIMEOUT) as monitor:
            try:
                barrier.wait(REQUEST_TIMEOUT)
            except threading.BrokenBarrierError:
                raise BenchmarkError(
                    f"the {count} burst threads were not ready within {REQUEST_TIMEOUT:.0f} s"
                ) from None
            released = time.perf_counter()
            deadline = released + BURST_TIMEOUT
            for thread in threads:
                thread.join(max(0.0, deadline - time.perf_counter()))
    finally:
        for client in clients:
            client.close()

    done = [outcome for outcome in outcomes if outcome is not None]
    failures = [outcome[2] for outcome in done if outcome[2] is not None]
    latencies = [outcome[0] for outcome in done if outcome[2] is None]
    # Starts still in flight when the last result arrived go on. Once they are done,
    # the running containers are all that the burst started, because no environment
    # stops during a burst unless it fails (the keep-alive is minutes long).
    at_end = get_environments(server.port)
    after = wait_for_starts(server)
    running_after = engine.api.containers(filters={"label": f"{OWNER_PID_LABEL}={server.pid}"})
    return {
        "count": count,
        "succeeded": len(latencies),
        "failed": len(failures),
        "hung": count - len(done),
        "failures": failures[:5],
        "wall_s": (max(outcome[1] for outcome in done) - released) if done else None,
        "latency_ms": summarize(latencies),
        "peak_containers": monitor.peak_containers,
        "peak_environments": monitor.peak_environments,
        "peak_starting": monitor.peak_starting,
        "peak_waiting": monitor.peak_waiting,
        "monitor_samples": monitor.samples,
        "monitor_errors": monitor.errors,
        "starting_at_end": at_end["Starting"],
        "containers_after": len(running_after),
        "environments_after": len(after["Environments"]),
        "init_ms": summarize(read_init_times(server)),
    }


def wait_for_starts(server: Server) -> dict[str, Any]:
    """Wait until the server has no environment starting, and return its environments.

    Gives up after REQUEST_TIMEOUT seconds and returns the last document then.
    """
    deadline = time.monotonic() + REQUEST_TIMEOUT
    while True:
        environments = get_environments(server.port)
        if environments["Starting"] == 0 or time.monotonic() >= deadline:
            return environments
        time.sleep(POLL_INTERVAL)


def read_init_times(server: Server) -> list[float]:
    """Return the start times in ms that the server logged for its environments.

    They come from lambdasim's `environment ready: ... in N ms` log lines, which time
    an environment from the opening of its Runtime API listener, through docker
    create, attach and start, to the runtime's first request for an event. The list
    is empty if the log format changes.
    """
    pattern = re.compile(r"environment ready: .* in (\d+) ms")
    return [float(match.group(1)) for match in pattern.finditer(server.log_text())]


def probe_tail_invoke(server: Server, name: str) -> dict[str, Any]:
    """Invoke `name` once with LogType=Tail and report whether the result came back in time.

    The log tail is returned only after the environment has closed the invocation's
    log, so this checks that log handling keeps up after a burst.
    """
    client = lambda_client(new_session(), server.url, TAIL_PROBE_TIMEOUT)
    started = time.perf_counter()
    try:
        response = client.invoke(FunctionName=name, Payload=WARM_PAYLOAD, LogType="Tail")
        payload = response["Payload"].read()
        failure = describe_failure(response, payload, WARM_PAYLOAD)
        if failure is None and not response.get("LogResult"):
            failure = "no LogResult in the response"
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
        failure = f"{type(exc).__name__}: {exc}"
    finally:
        client.close()
    return {"ok": failure is None, "seconds": time.perf_counter() - started, "failure": failure}


def measure_bursts(
    engine: docker.DockerClient,
    work_dir: Path,
    count: int,
    max_starts_values: list[int],
    rounds: int,
) -> list[dict[str, Any]]:
    """Run one burst per max-starts value and round, each on a fresh server.

    Every second round takes the values in reverse order, so that a drift of the
    machine's load over the run does not always favour the same value.
    """
    results = []
    for round_index in range(rounds):
        values = max_starts_values if round_index % 2 == 0 else max_starts_values[::-1]
        for max_starts in values:
            label = f"burst-{max_starts}-round-{round_index + 1}"
            name = f"bench-burst-{max_starts}-{uuid.uuid4().hex[:6]}"
            result: dict[str, Any] = {"max_starts": max_starts, "round": round_index + 1}
            results.append(result)
            server_report: dict[str, Any] = {}
            with running_server(
                engine,
                work_dir,
                label,
                {"LAMBDASIM_MAX_CONCURRENT_STARTS": str(max_starts)},
                server_report,
            ) as server:
                create_function(server, name)
                result["load_average_1min"] = os.getloadavg()[0]
                result.update(run_burst(engine, server, name, count))
                result["tail_probe"] = probe_tail_invoke(server, name)
            result["server"] = server_report
    return results


# Warm load ------------------------------------------------------------------------


@dataclass
class LoadResult:
    """The request count, time, latencies and first failure of one load client."""

    count: int = 0
    elapsed_s: float = 0.0
    #: CPU seconds of the client's thread, or of its process in process mode.
    cpu_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    error: str | None = None


def raw_sender(port: int, name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return a function that sends one unsigned keep-alive invoke, and a close function."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    connection.connect()
    assert connection.sock is not None
    connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    path = f"/2015-03-31/functions/{name}/invocations"
    headers = {"Content-Type": "application/json"}

    def send() -> None:
        connection.request("POST", path, body=WARM_PAYLOAD, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        if response.status != 200 or response.getheader("X-Amz-Function-Error"):
            raise BenchmarkError(f"raw invoke returned HTTP {response.status}: {payload[:200]!r}")
        if payload != WARM_PAYLOAD and json.loads(payload) != json.loads(WARM_PAYLOAD):
            raise BenchmarkError(f"raw invoke returned {payload[:200]!r}")

    return send, connection.close


def boto3_sender(port: int, name: str) -> tuple[Callable[[], None], Callable[[], None]]:
    """Return a function that sends one boto3 Invoke, and a close function."""
    client = lambda_client(new_session(), f"http://127.0.0.1:{port}")

    def send() -> None:
        response = client.invoke(FunctionName=name, Payload=WARM_PAYLOAD)
        payload = response["Payload"].read()
        failure = describe_failure(response, payload, WARM_PAYLOAD)
        if failure is not None:
            raise BenchmarkError(f"boto3 invoke failed: {failure}")

    return send, client.close


def run_load_client(
    client_kind: str,
    port: int,
    name: str,
    duration: float,
    ready: Callable[[], object],
    cpu_clock: Callable[[], float],
) -> LoadResult:
    """Send sequential invokes for `duration` seconds after `ready()` returns.

    The client stops at its first failure and reports it. `cpu_clock` is
    `time.thread_time` for a thread or `time.process_time` for a process.
    """
    result = LoadResult()
    make_sender = raw_sender if client_kind == "raw" else boto3_sender
    send, close = make_sender(port, name)
    try:
        ready()
        cpu_started = cpu_clock()
        started = time.perf_counter()
        deadline = started + duration
        while result.count < MAX_REQUESTS_PER_CLIENT and time.perf_counter() < deadline:
            before = time.perf_counter()
            try:
                send()
            except (
                BenchmarkError,
                OSError,
                http.client.HTTPException,
                ValueError,
                botocore.exceptions.BotoCoreError,
                botocore.exceptions.ClientError,
            ) as exc:
                result.error = f"{type(exc).__name__}: {exc}"
                break
            result.latencies_ms.append(elapsed_ms(before))
            result.count += 1
        result.elapsed_s = time.perf_counter() - started
        result.cpu_s = cpu_clock() - cpu_started
    finally:
        close()
    return result


def load_process_main(
    client_kind: str, port: int, name: str, duration: float, barrier: Any, results: Any
) -> None:
    """Entry point of one load process: run a client and put its result on `results`."""
    try:
        result = run_load_client(
            client_kind,
            port,
            name,
            duration,
            lambda: barrier.wait(LOAD_READY_TIMEOUT),
            time.process_time,
        )
    except Exception as exc:  # report any failure to the parent instead of dying silently
        result = LoadResult(error=f"{type(exc).__name__}: {exc}")
        barrier.abort()  # so that the others stop waiting for this client
    results.put(asdict(result))


def run_load_threads(
    client_kind: str, server: Server, name: str, clients: int, duration: float
) -> tuple[list[LoadResult], dict[str, float]]:
    """Run `clients` clients in threads of this process; return their results and CPU use."""
    port = server.port
    barrier = threading.Barrier(clients + 1)
    results: list[LoadResult | None] = [None] * clients

    def client_thread(index: int) -> None:
        try:
            results[index] = run_load_client(
                client_kind,
                port,
                name,
                duration,
                lambda: barrier.wait(LOAD_READY_TIMEOUT),
                time.thread_time,
            )
        except (threading.BrokenBarrierError, OSError, http.client.HTTPException) as exc:
            results[index] = LoadResult(error=f"{type(exc).__name__}: {exc}")
            barrier.abort()  # so that the others stop waiting for this client

    threads = [
        threading.Thread(target=client_thread, args=(index,), daemon=True)
        for index in range(clients)
    ]
    for thread in threads:
        thread.start()
    try:
        barrier.wait(LOAD_READY_TIMEOUT)
    except threading.BrokenBarrierError:
        raise BenchmarkError(f"the {clients} load threads were not ready in time") from None
    meter = CpuMeter(server.pid)
    deadline = time.monotonic() + duration + REQUEST_TIMEOUT
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    finished = [result for result in results if result is not None]
    if len(finished) < clients:
        raise BenchmarkError(f"a {client_kind} load thread did not finish within its time bound")
    return finished, meter.stop(sum(result.cpu_s for result in finished))


def run_load_processes(
    client_kind: str, server: Server, name: str, clients: int, duration: float
) -> tuple[list[LoadResult], dict[str, float]]:
    """Run one client in each of `clients` spawned processes; return results and CPU use."""
    # Spawn, not fork: this process has threads, and a forked child could inherit held locks.
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(clients + 1)
    results_queue = context.Queue()
    processes = [
        context.Process(
            target=load_process_main,
            args=(client_kind, server.port, name, duration, barrier, results_queue),
            daemon=True,
        )
        for _ in range(clients)
    ]
    collected: list[LoadResult] = []
    try:
        for process in processes:
            process.start()
        try:
            barrier.wait(LOAD_READY_TIMEOUT)
        except threading.BrokenBarrierError:
            raise BenchmarkError(f"the {clients} load processes were not ready in time") from None
        meter = CpuMeter(server.pid)
        deadline = time.monotonic() + duration + REQUEST_TIMEOUT
        for _ in range(clients):
            try:
                raw = results_queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchmarkError(
                    f"a {client_kind} load process did not report within its time bound"
                ) from None
            collected.append(LoadResult(**raw))
        cpu = meter.stop(sum(result.cpu_s for result in collected))
    finally:
        # The processes exit once they have put their result. After an error or the
        # time limit they may still be running, so they get 5 s in all, then SIGTERM.
        join_deadline = time.monotonic() + 5
        for process in processes:
            process.join(max(0.0, join_deadline - time.monotonic()))
        for process in processes:
            if process.is_alive():
                print(f"terminating load process {process.pid}", file=sys.stderr)
                process.terminate()
                process.join(5)
        results_queue.close()
    return collected, cpu


def summarize_load(results: list[LoadResult]) -> dict[str, Any]:
    latencies = [value for result in results for value in result.latencies_ms]
    errors = [result.error for result in results if result.error]
    return {
        "clients": len(results),
        "invokes": sum(result.count for result in results),
        "invokes_per_s": sum(
            result.count / result.elapsed_s for result in results if result.elapsed_s > 0
        ),
        "latency_ms": summarize(latencies),
        "errors": errors[:5],
    }


def warm_environments(server: Server, name: str, count: int) -> int:
    """Start `count` environments of `name` with overlapping invokes; return how many are idle."""
    session = new_session()
    clients = [lambda_client(session, server.url) for _ in range(count)]
    event = json.dumps({"sleep": 0.5}).encode()
    failures: list[str] = []

    def invoke(client: Any) -> None:
        try:
            response = client.invoke(FunctionName=name, Payload=event)
            failure = describe_failure(response, response["Payload"].read(), event)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            failure = f"{type(exc).__name__}: {exc}"
        if failure is not None:
            failures.append(failure)

    threads = [threading.Thread(target=invoke, args=(client,), daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + REQUEST_TIMEOUT * 2
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    for client in clients:
        client.close()
    if failures or any(thread.is_alive() for thread in threads):
        raise BenchmarkError(f"warming {count} environments of {name} failed: {failures[:3]}")
    environments = get_environments(server.port)["Environments"]
    return sum(1 for env in environments if env["FunctionName"] == name and env["State"] == "idle")


def measure_warm(
    engine: docker.DockerClient, work_dir: Path, clients: int, duration: float
) -> dict[str, Any]:
    """Measure warm throughput and latency of 1 and `clients` clients on a fresh server."""
    name = f"bench-warm-{uuid.uuid4().hex[:6]}"
    cases = [
        ("boto3", 1, "threads"),
        ("raw", 1, "threads"),
        ("boto3", clients, "threads"),
        ("raw", clients, "threads"),
        ("boto3", clients, "processes"),
        ("raw", clients, "processes"),
    ]
    results: dict[str, Any] = {"cases": []}
    server_report: dict[str, Any] = {}
    with running_server(engine, work_dir, "warm", {}, server_report) as server:
        create_function(server, name)
        results["idle_environments"] = warm_environments(server, name, clients)
        if results["idle_environments"] < clients:
            raise BenchmarkError(
                f"only {results['idle_environments']} of {clients} warmed environments are idle"
            )
        for client_kind, count, mode in cases:
            run = run_load_threads if mode == "threads" else run_load_processes
            loads, cpu = run(client_kind, server, name, count, duration)
            case = {"client": client_kind, "clients": count, "mode": mode}
            case.update(summarize_load(loads))
            case["cpu"] = cpu
            results["cases"].append(case)
    results["server"] = server_report
    return results


# Bare Runtime API round trip ------------------------------------------------------


class RuntimeApiStub:
    """A minimal Runtime API that hands out one event at a time and times each round trip.

    `events` receives (request id, payload) pairs to hand out on
    `GET /next`. Each `/response` puts (request id, body, receive time) on
    `results`, and an error report puts (None, body, receive time) there.
    """

    def __init__(self) -> None:
        self.events_send, self.events_receive = trio.open_memory_channel[tuple[str, bytes]](1)
        self.results_send, self.results_receive = trio.open_memory_channel[
            tuple[str | None, bytes, float]
        ](1)
        #: perf_counter time at which each event was handed out, by request id.
        self.handed_out: dict[str, float] = {}

    async def serve_connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body = await self._receive_request(stream, connection)
                if request is None:
                    return
                await self._answer(stream, connection, request, body)
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (h11.ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError):
            return
        finally:
            await stream.aclose()

    async def _receive_request(
        self, stream: trio.SocketStream, connection: h11.Connection
    ) -> tuple[h11.Request | None, bytes]:
        request = None
        body = bytearray()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                connection.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""

    async def _answer(
        self,
        stream: trio.SocketStream,
        connection: h11.Connection,
        request: h11.Request,
        body: bytes,
    ) -> None:
        target = request.target.decode()
        if request.method == b"GET" and target == RUNTIME_API_NEXT:
            request_id, payload = await self.events_receive.receive()
            deadline_ms = int(time.time() * 1000) + 60_000
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("Lambda-Runtime-Aws-Request-Id", request_id),
                ("Lambda-Runtime-Deadline-Ms", str(deadline_ms)),
                (
                    "Lambda-Runtime-Invoked-Function-Arn",
                    f"arn:aws:lambda:{REGION}:000000000000:function:bench-round-trip",
                ),
                ("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0"),
            ]
            data = connection.send(h11.Response(status_code=200, headers=headers))
            data += connection.send(h11.Data(data=payload))
            data += connection.send(h11.EndOfMessage())
            self.handed_out[request_id] = time.perf_counter()
            await stream.send_all(data)
            return
        received = time.perf_counter()
        accepted = b'{"status":"OK"}'
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(accepted)))]
        data = connection.send(h11.Response(status_code=202, headers=headers))
        data += connection.send(h11.Data(data=accepted))
        data += connection.send(h11.EndOfMessage())
        await stream.send_all(data)
        parts = target.split("/")
        if request.method == b"POST" and target.endswith("/response") and len(parts) > 2:
            await self.results_send.send((parts[-2], body, received))
        else:
            # An /error or /init/error report, or a request that this stub does not implement.
            report = request.method + b" " + request.target + b": " + body[:500]
            await self.results_send.send((None, report, received))


def start_round_trip_container(
    engine: docker.DockerClient, code_dir: Path, runtime_api: str, run_id: str
) -> Any:
    """Start the runtime image with the options lambdasim uses for a 128 MB function."""
    try:
        return engine.containers.run(
            IMAGE,
            command=[HANDLER],
            name=f"lambdasim-bench-round-trip-{run_id}",
            environment={
                "AWS_LAMBDA_RUNTIME_API": runtime_api,
                "_HANDLER": HANDLER,
                "AWS_LAMBDA_FUNCTION_NAME": "bench-round-trip",
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
                "AWS_REGION": REGION,
                "LAMBDA_TASK_ROOT": "/var/task",
                "TZ": ":UTC",
            },
            labels={BENCHMARK_LABEL: run_id},
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
    except docker.errors.ImageNotFound as exc:
        raise BenchmarkError(
            f"Image {IMAGE} is missing ({exc}). Build it with scripts/build-images."
        ) from exc


async def measure_round_trips_async(
    engine: docker.DockerClient, code_dir: Path, count: int, run_id: str
) -> list[float]:
    stub = RuntimeApiStub()
    samples: list[float] = []
    # Errors are raised after the nursery closes, so that the caller gets them bare
    # rather than in an exception group.
    failure: Exception | None = None
    with trio.fail_after(ROUND_TRIP_TIMEOUT):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, stub.serve_connection, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            container = None
            try:
                container = await trio.to_thread.run_sync(
                    start_round_trip_container, engine, code_dir, f"127.0.0.1:{port}", run_id
                )
                for index in range(ROUND_TRIP_WARMUP + count):
                    request_id = str(uuid.uuid4())
                    payload = json.dumps({"n": index}).encode()
                    with trio.fail_after(ROUND_TRIP_EVENT_TIMEOUT):
                        await stub.events_send.send((request_id, payload))
                        answered_id, body, received = await stub.results_receive.receive()
                    if answered_id != request_id:
                        raise BenchmarkError(
                            f"the runtime reported {body[:300]!r} for event {index}"
                        )
                    if json.loads(body) != json.loads(payload):
                        raise BenchmarkError(f"the runtime returned {body[:300]!r} for {payload!r}")
                    handed_out = stub.handed_out.pop(request_id)
                    if index >= ROUND_TRIP_WARMUP:
                        samples.append((received - handed_out) * 1000.0)
            except Exception as exc:
                failure = exc
            finally:
                if container is not None:
                    with trio.move_on_after(REQUEST_TIMEOUT, shield=True):
                        await trio.to_thread.run_sync(
                            functools.partial(container.remove, force=True)
                        )
                nursery.cancel_scope.cancel()
    if failure is not None:
        raise failure
    return samples


def measure_round_trips(engine: docker.DockerClient, work_dir: Path, count: int) -> list[float]:
    """Time `count` bare Runtime API round trips after ROUND_TRIP_WARMUP unmeasured ones.

    trio runs in its own thread, because SIGALRM may interrupt the main thread at
    any point and trio's run loop must not see that exception.
    """
    code_dir = work_dir / "round-trip-code"
    code_dir.mkdir()
    (code_dir / "lambda_function.py").write_text(HANDLER_SOURCE)
    run_id = uuid.uuid4().hex[:8]
    outcome: dict[str, Any] = {}

    def run_trio() -> None:
        try:
            outcome["samples"] = trio.run(
                measure_round_trips_async, engine, code_dir, count, run_id
            )
        except Exception as exc:  # handed to the main thread below
            outcome["error"] = exc

    thread = threading.Thread(target=run_trio, daemon=True, name="round-trip")
    thread.start()
    try:
        thread.join(ROUND_TRIP_TIMEOUT + REQUEST_TIMEOUT + 10)
    finally:
        # A no-op unless the run was interrupted before the container was removed.
        remove_leftover_containers(engine, f"{BENCHMARK_LABEL}={run_id}")
    if "error" in outcome:
        error = outcome["error"]
        if isinstance(error, trio.TooSlowError):
            raise BenchmarkError(
                f"the bare round trip timed out: {ROUND_TRIP_EVENT_TIMEOUT:.0f} s per event, "
                f"{ROUND_TRIP_TIMEOUT:.0f} s in all"
            ) from error
        if isinstance(error, (BenchmarkError, docker.errors.DockerException)):
            raise error
        raise BenchmarkError(f"the bare round trip failed: {error!r}") from error
    if "samples" not in outcome:
        raise BenchmarkError("the bare round-trip thread did not finish in time")
    return outcome["samples"]


# Report ---------------------------------------------------------------------------


def print_machine(facts: dict[str, Any]) -> None:
    print("Machine")
    print(f"  date (UTC)        {facts['date_utc']}")
    print(f"  nproc             {facts['nproc']}")
    print(f"  CPU model         {facts['cpu_model']}")
    print(f"  memory            {facts['memory_gib']} GiB")
    print(f"  OS, kernel        {facts['os']}, {facts['kernel']}")
    print(f"  Docker server     {facts['docker_server_version']}")
    print(f"  Python            {facts['python_version']}")
    print(
        f"  boto3, docker-py  {facts['boto3_version']}, {facts['docker_py_version']} "
        f"(trio {facts['trio_version']}, h11 {facts['h11_version']})"
    )
    for moment in ("start", "end"):
        load = ", ".join(f"{value:.2f}" for value in facts[f"load_average_at_{moment}"])
        print(f"  load average      {load} (1, 5, 15 min, at {moment})")
    print()


def print_bursts(bursts: list[dict[str, Any]]) -> None:
    count = bursts[0]["count"]
    print(
        f"Burst: {count} concurrent first invokes, handler sleeps {BURST_SLEEP} s, "
        "fresh server each (rows in run order)"
    )
    header = (
        f"{'max starts':>10} {'round':>5} {'load':>5} {'ok':>7} {'hung':>4} {'wall s':>6} "
        f"{'first ms':>8} {'p50 ms':>6} {'max ms':>6} {'containers':>10} {'late starts':>11} "
        f"{'init p50 ms':>11} {'stop s':>6}"
    )
    print(header)
    print("-" * len(header))
    for burst in bursts:
        latency = burst["latency_ms"]
        stop = burst["server"].get("stop_seconds")
        print(
            f"{burst['max_starts']:>10} {burst['round']:>5} {burst['load_average_1min']:>5.2f} "
            f"{burst['succeeded']:>3}/{burst['count']:<3} {burst['hung']:>4} "
            f"{burst['wall_s'] or 0.0:>6.2f} {latency.get('min', 0.0):>8.0f} "
            f"{latency.get('p50', 0.0):>6.0f} {latency.get('max', 0.0):>6.0f} "
            f"{burst_containers(burst):>10} {burst['starting_at_end']:>11} "
            f"{burst['init_ms'].get('p50', 0.0):>11.0f} "
            f"{stop if stop is not None else float('nan'):>6.1f}"
        )
    print(
        "load: 1-minute load average before the burst. first, p50, max: invoke latency.\n"
        "containers: the server's running containers once its starts are done (none stop\n"
        "during a burst), or the peak sampled during the burst if higher. late starts:\n"
        "environments still starting when the last result arrived. init p50: the server's\n"
        "logged time from an environment's start to its runtime's first request."
    )
    print()

    print("Burst by max starts, mean over rounds")
    header = (
        f"{'max starts':>10} {'rounds':>6} {'wall s':>6} {'first ms':>8} {'p50 ms':>6} "
        f"{'max ms':>6} {'containers':>10} {'init p50 ms':>11}"
    )
    print(header)
    print("-" * len(header))
    for max_starts in sorted({burst["max_starts"] for burst in bursts}):
        runs = [b for b in bursts if b["max_starts"] == max_starts and b["latency_ms"]["count"]]
        if not runs:
            print(f"{max_starts:>10} {0:>6} (no successful invoke)")
            continue
        init_p50s = [b["init_ms"]["p50"] for b in runs if b["init_ms"]["count"]]
        print(
            f"{max_starts:>10} {len(runs):>6} "
            f"{statistics.fmean(b['wall_s'] for b in runs):>6.2f} "
            f"{statistics.fmean(b['latency_ms']['min'] for b in runs):>8.0f} "
            f"{statistics.fmean(b['latency_ms']['p50'] for b in runs):>6.0f} "
            f"{statistics.fmean(b['latency_ms']['max'] for b in runs):>6.0f} "
            f"{statistics.fmean(burst_containers(b) for b in runs):>10.1f} "
            f"{statistics.fmean(init_p50s) if init_p50s else float('nan'):>11.0f}"
        )
    print()

    for burst in bursts:
        prefix = f"  max starts {burst['max_starts']}, round {burst['round']}:"
        for failure in burst["failures"]:
            print(f"{prefix} failed invoke: {failure}")
        for error in burst["monitor_errors"]:
            print(f"{prefix} container sampling failed: {error}")
        probe = burst["tail_probe"]
        state = "ok" if probe["ok"] else f"FAILED ({probe['failure']})"
        print(
            f"{prefix} LogType=Tail invoke after the burst: {state} in {probe['seconds']:.2f} s "
            f"with {burst['environments_after']} environments"
        )
        leftovers = burst["server"].get("leftover_containers") or []
        if leftovers:
            print(
                f"{prefix} the server left {len(leftovers)} containers after SIGTERM: {leftovers[:5]}"
            )
        if burst["server"].get("exit_status") not in (0, None):
            print(f"{prefix} the server exited with status {burst['server']['exit_status']}")
    print()


def burst_containers(burst: dict[str, Any]) -> int:
    return max(burst["peak_containers"], burst["containers_after"])


def server_cpu_ms_per_invoke(case: dict[str, Any]) -> float:
    rate = case["invokes_per_s"]
    return case["cpu"]["server_cores"] / rate * 1000.0 if rate > 0 else float("nan")


def print_warm(warm: dict[str, Any], duration: float) -> None:
    print(
        f"Warm load: {duration:.0f} s per case, {warm['idle_environments']} warmed environments, "
        f"payload {WARM_PAYLOAD.decode()}"
    )
    header = (
        f"{'client':<7} {'clients':>7} {'in':<9} {'invokes/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'max ms':>7} {'server cores':>12} {'server CPU ms':>13} {'client cores':>12} "
        f"{'machine busy':>12}"
    )
    print(header)
    print("-" * len(header))
    for case in warm["cases"]:
        latency = case["latency_ms"]
        cpu = case["cpu"]
        print(
            f"{case['client']:<7} {case['clients']:>7} {case['mode']:<9} "
            f"{case['invokes_per_s']:>9.0f} {latency.get('p50', 0.0):>7.2f} "
            f"{latency.get('p99', 0.0):>7.2f} {latency.get('max', 0.0):>7.1f} "
            f"{cpu['server_cores']:>12.2f} {server_cpu_ms_per_invoke(case):>13.2f} "
            f"{cpu['client_cores']:>12.2f} "
            f"{cpu['machine_busy_fraction'] * 100:>11.0f}%"
        )
        for error in case["errors"]:
            print(f"  {case['client']} x{case['clients']} {case['mode']}: client stopped: {error}")
    print(
        "server cores: CPU seconds of the lambdasim process per second. server CPU ms: its\n"
        "CPU time per invoke. client cores: CPU seconds per second of the load clients (their\n"
        "own threads or processes). machine busy: all cores, containers and other work included."
    )
    print()


def print_targets(targets: dict[str, Any]) -> None:
    print("Targets")
    for line in targets["lines"]:
        print(f"  {line}")


def evaluate(result: dict[str, Any], clients: int) -> dict[str, Any]:
    """Compare the figures with the targets and return the verdicts and report lines."""
    lines = []
    for burst in result["bursts"]:
        met = burst["succeeded"] == burst["count"] and burst["hung"] == 0
        lines.append(
            f"burst {burst['count']}/{burst['count']} ok, none hung (max starts "
            f"{burst['max_starts']}, round {burst['round']}): {burst['succeeded']}/"
            f"{burst['count']} ok, {burst['hung']} hung ({'met' if met else 'not met'})"
        )
    for case in result["warm"]["cases"]:
        if case["clients"] == clients:
            rate = case["invokes_per_s"]
            lines.append(
                f"warm >= {WARM_THROUGHPUT_TARGET:.0f} invokes/s with {clients} clients "
                f"({case['client']} in {case['mode']}): {rate:.0f}/s "
                f"({'met' if rate >= WARM_THROUGHPUT_TARGET else 'not met'})"
            )
    round_trip_p50 = result["round_trip_ms"]["p50"]
    ratios = {}
    for case in result["warm"]["cases"]:
        if case["clients"] == 1:
            p50 = case["latency_ms"]["p50"]
            ratios[case["client"]] = p50 / round_trip_p50
            lines.append(
                f"warm p50 <= {WARM_P50_TARGET_MS:.1f} ms ({case['client']}, 1 client): "
                f"{p50:.2f} ms ({'met' if p50 <= WARM_P50_TARGET_MS else 'not met'}); "
                f"{ratios[case['client']]:.1f} x the bare round trip p50 of {round_trip_p50:.2f} ms"
            )
    return {"lines": lines, "warm_p50_to_round_trip": ratios}


# Main -----------------------------------------------------------------------------


def positive_int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected integers of at least 1, got {text!r}")
    return values


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure lambdasim's container pool on 127.0.0.1: a burst of first "
        "invokes per max-starts setting, warm throughput, and the bare Runtime API round trip."
    )
    # Bursts
    parser.add_argument(
        "--burst",
        type=positive_int,
        default=100,
        help="concurrent first invokes per burst (default 100)",
    )
    parser.add_argument(
        "--max-starts",
        type=positive_int_list,
        default=[2, 4, 8, 16],
        metavar="N,N,...",
        help="LAMBDASIM_MAX_CONCURRENT_STARTS values, one burst and server each (default 2,4,8,16)",
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=2,
        help="bursts per max-starts value; every second round runs the values in reverse "
        "order (default 2)",
    )

    # Warm load and round trips
    parser.add_argument(
        "--clients",
        type=positive_int,
        default=8,
        help="concurrent clients in the multi-client warm cases (default 8)",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per warm load case (default 10)"
    )
    parser.add_argument(
        "--round-trips",
        type=positive_int,
        default=200,
        help="measured bare Runtime API round trips (default 200)",
    )

    # The run
    parser.add_argument(
        "--time-limit",
        type=positive_int,
        default=420,
        help="seconds after which the run is aborted (default 420)",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the figures as one JSON object"
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        metavar="DIR",
        help="keep the servers' logs and data in a new folder under DIR (default: a "
        "temporary folder, removed at the end)",
    )

    arguments = parser.parse_args(argv)
    if not 0 < arguments.duration <= 60:
        parser.error(
            f"--duration must be more than 0 and at most 60 seconds, got {arguments.duration}"
        )
    return arguments


def on_alarm(signum: int, frame: object) -> None:
    raise TimeLimitExceeded


def run(arguments: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    engine = docker.from_env(timeout=int(REQUEST_TIMEOUT))
    try:
        facts = machine_facts(engine)
        round_trips = measure_round_trips(engine, work_dir, arguments.round_trips)
        warm = measure_warm(engine, work_dir, arguments.clients, arguments.duration)
        bursts = measure_bursts(
            engine, work_dir, arguments.burst, arguments.max_starts, arguments.rounds
        )
    finally:
        engine.close()
    facts["load_average_at_end"] = list(os.getloadavg())
    result = {
        "machine": facts,
        "settings": {
            "image": IMAGE,
            "burst": arguments.burst,
            "burst_sleep_s": BURST_SLEEP,
            "max_starts": arguments.max_starts,
            "rounds": arguments.rounds,
            "clients": arguments.clients,
            "duration_s": arguments.duration,
            "round_trips": arguments.round_trips,
        },
        "round_trip_ms": summarize(round_trips),
        "warm": warm,
        "bursts": bursts,
    }
    result["targets"] = evaluate(result, arguments.clients)
    return result


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(arguments.time_limit)
    started = time.perf_counter()
    try:
        if arguments.log_dir is not None:
            arguments.log_dir.mkdir(parents=True, exist_ok=True)
            work_dir = Path(tempfile.mkdtemp(prefix="pool-", dir=arguments.log_dir))
            print(f"keeping the servers' logs and data in {work_dir}", file=sys.stderr)
            result = run(arguments, work_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="lambdasim-bench-pool-") as work:
                result = run(arguments, Path(work))
    except TimeLimitExceeded:
        print(f"pool: aborted after the time limit of {arguments.time_limit} s", file=sys.stderr)
        return 1
    except (
        BenchmarkError,
        docker.errors.DockerException,
        botocore.exceptions.BotoCoreError,
        botocore.exceptions.ClientError,
        OSError,
    ) as exc:
        print(f"pool: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)

    print_machine(result["machine"])
    round_trip = result["round_trip_ms"]
    print(
        f"Bare Runtime API round trip (event handed out -> /response received), "
        f"{round_trip['count']} events: p50 {round_trip['p50']:.3f} ms, "
        f"p99 {round_trip['p99']:.3f} ms, max {round_trip['max']:.3f} ms"
    )
    print()
    print_warm(result["warm"], arguments.duration)
    print_bursts(result["bursts"])
    print_targets(result["targets"])
    print(f"\nTotal run time {time.perf_counter() - started:.0f} s")
    if arguments.json:
        print()
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
