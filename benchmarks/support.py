"""Shared parts of the benchmark scripts: the lambdasim server process, errors and helpers.

The scripts run as `python benchmarks/NAME.py`, which puts this folder on sys.path,
so they import this module as `support`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

#: Seconds the server may take to print its ready line.
REGION = "us-east-1"
#: The trust policy of the execution roles the benchmarks create.
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
#: The payload of warm invokes, which the benchmark handlers return unchanged.
WARM_PAYLOAD = b'{"n": 1}'

SERVER_READY_TIMEOUT = 60.0
#: Seconds the server may take to exit after SIGTERM. Its own shutdown is bounded
#: by a 16 s HTTP stop and a 20 s container sweep (lambdasim.server.serve.STOP_TIMEOUT
#: and lambdasim.simulator._SHUTDOWN_SWEEP_TIMEOUT).
SERVER_STOP_TIMEOUT = 45.0


class TimeLimitExceeded(BaseException):
    """The run took longer than `--time-limit` seconds.

    A BaseException, like KeyboardInterrupt, because botocore turns any Exception
    raised inside a request into a retryable HTTPClientError.
    """


class BenchmarkError(Exception):
    """A measurement failed. The message names the step and the cause."""


# Statistics -----------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of `samples` (0 < fraction <= 1)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def summarize(samples_ms: list[float]) -> dict[str, Any]:
    """Return count, p50 (median), p99 (nearest rank), mean, min and max, in ms.

    An empty list gives only the count 0.
    """
    if not samples_ms:
        return {"count": 0}
    return {
        "count": len(samples_ms),
        "p50": statistics.median(samples_ms),
        "p99": percentile(samples_ms, 0.99),
        "mean": statistics.fmean(samples_ms),
        "min": min(samples_ms),
        "max": max(samples_ms),
    }


def elapsed_ms(start: float) -> float:
    """Return the milliseconds since `start`, a `time.perf_counter()` value."""
    return (time.perf_counter() - start) * 1000.0


# Machine facts --------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as release:
            for line in release:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


# Command line ---------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# The lambdasim server -------------------------------------------------------------


class Server:
    """A `lambdasim serve` subprocess on a free port of 127.0.0.1.

    `label` names the server in messages and in its file names, so that a script
    can start several servers in one work directory. With a label, the log is
    `server-LABEL.log` and the data directory `data-LABEL`, and without one they are
    `server.log` and `data`. `log_path`, when given, replaces the log's default path.
    `environment` adds variables to the server's environment, but it cannot change
    the bind address, the port or the data directory.
    """

    _READY = re.compile(r"lambdasim ready on http://(127\.0\.0\.1):(\d+)")

    def __init__(
        self,
        work_dir: Path,
        log_path: Path | None = None,
        *,
        label: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> None:
        self.label = label
        suffix = f"-{label}" if label else ""
        self.log_path = log_path or work_dir / f"server{suffix}.log"
        self._log = open(self.log_path, "wb")
        env = dict(os.environ)
        env.update(environment or {})
        env.update(
            {
                "LAMBDASIM_HOST": "127.0.0.1",
                "LAMBDASIM_PORT": "0",
                "LAMBDASIM_DATA_DIR": str(work_dir / f"data{suffix}"),
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.process = subprocess.Popen(
            [sys.executable, "-m", "lambdasim", "serve"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        #: The server's port, 0 until `wait_ready` has read it from the ready line.
        self.port = 0
        #: Seconds from SIGTERM to the server's exit, None unless `stop` timed an exit.
        self.stop_seconds: float | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        # A thread reads stdout so that waiting for the ready line can time out.
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def _name(self) -> str:
        return f"lambdasim ({self.label})" if self.label else "lambdasim"

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for raw in self.process.stdout:
            self._lines.put(raw.decode(errors="replace"))
        self._lines.put(None)

    def wait_ready(self, timeout: float = SERVER_READY_TIMEOUT) -> None:
        """Wait for the ready line and store the port from it.

        Raises BenchmarkError, with the log tail, when the server exits first or
        prints no ready line within `timeout` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BenchmarkError(
                    f"{self._name} did not print its ready line within {timeout:.0f} s. "
                    f"Log tail:\n{self.log_tail()}"
                )
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise BenchmarkError(
                    f"{self._name} exited with status {self.process.wait()} "
                    f"before it was ready. Log tail:\n{self.log_tail()}"
                )
            match = self._READY.search(line)
            if match:
                self.port = int(match.group(2))
                return

    def stop(self) -> int | None:
        """Stop the server with SIGTERM, time the exit and return its exit status.

        Falls back to SIGKILL (of this pid only) when the server does not exit
        within SERVER_STOP_TIMEOUT seconds, and prints a message to stderr then.
        """
        if self.process.poll() is None:
            started = time.perf_counter()
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(SERVER_STOP_TIMEOUT)
                self.stop_seconds = time.perf_counter() - started
            except subprocess.TimeoutExpired:
                print(
                    f"lambdasim (pid {self.pid}) did not exit within "
                    f"{SERVER_STOP_TIMEOUT:.0f} s of SIGTERM. Sending SIGKILL.",
                    file=sys.stderr,
                )
                self.process.kill()
                self.process.wait(10)
        self._reader.join(5)
        self._log.close()
        return self.process.returncode

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])
