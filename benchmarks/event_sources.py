#!/usr/bin/env python3
"""Measure event source mapping throughput beside the embedded SQS's own rate.

The script starts `lambdasim serve` on a free loopback port and measures, in one run:

- SQS baseline: a queue filled with `--messages` messages is drained by consumers
  that call ReceiveMessage (10 messages) and DeleteMessageBatch through boto3 in a
  loop, with 1 consumer thread and with `--consumers` threads. This is the embedded
  SQS's own receive + delete rate over HTTP.
- SQS mapping: a second queue with the same number of messages, and a mapping with
  BatchSize 10 and `ScalingConfig.MaximumConcurrency` `--concurrency` to a Python
  function that returns at once. The mapping is created disabled, the queue filled,
  and the clock runs from the UpdateEventSourceMapping that enables it until the
  queue is empty (checked every 50 ms). The function's containers are started
  before the clock runs.
- Kinesis mapping: a one-shard stream with `--records` records over 64 partition
  keys, and a mapping with BatchSize 100 from TRIM_HORIZON, once with
  ParallelizationFactor 1 and once with 4. The function sends the size of each batch
  to an SQS queue, and the clock runs from enabling the mapping until those sizes
  add up to the number of records.

It prints the rates, the machine facts and the ratio of the SQS mapping's rate to
the better baseline. Targets: the mapping at least 80 % of the baseline and at
least 2,000 messages/s.

Every request goes to 127.0.0.1 with dummy credentials. SIGALRM aborts the
measurements after `--time-limit` seconds; the server is always stopped with SIGTERM.

Run: python benchmarks/event_sources.py [--messages 10000] [--records 50000] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import signal
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import botocore.config
from support import REGION, BenchmarkError, Server, TimeLimitExceeded, cpu_model

ROLE_NAME = "lambdasim-benchmark-esm"
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
POLICIES = (
    "service-role/AWSLambdaSQSQueueExecutionRole",
    "service-role/AWSLambdaKinesisExecutionRole",
    "AmazonSQSFullAccess",
)
QUICK_SOURCE = """\
import time
def handler(event, context):
    if "warm" in event:
        time.sleep(event["warm"])
"""
COUNTING_SOURCE = """\
import os, time, boto3
sqs = boto3.client("sqs")
def handler(event, context):
    if "warm" in event:
        time.sleep(event["warm"])
        return
    sqs.send_message(QueueUrl=os.environ["COUNT_URL"], MessageBody=str(len(event["Records"])))
"""
#: Targets for the SQS mapping.
TARGET_SHARE_OF_BASELINE = 0.8
TARGET_MESSAGES_PER_SECOND = 2000.0
#: Seconds between checks of the queue depth or the delivered count.
CHECK_INTERVAL = 0.05


def client(service: str, url: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore.config.Config(
            retries={"total_max_attempts": 1}, read_timeout=60, max_pool_connections=32
        ),
    )


def zip_source(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


def wait_until(probe: Callable[[], bool], timeout: float, condition: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:.0f} s waiting for {condition}")
        time.sleep(CHECK_INTERVAL)


# Setup --------------------------------------------------------------------------------


def create_role(url: str) -> str:
    iam = client("iam", url)
    arn = iam.create_role(RoleName=ROLE_NAME, AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
    for policy in POLICIES:
        iam.attach_role_policy(RoleName=ROLE_NAME, PolicyArn=f"arn:aws:iam::aws:policy/{policy}")
    return arn


def create_function(lam: Any, name: str, source: str, role: str, variables: dict[str, str]) -> None:
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_source(source)},
        Timeout=30,
        Environment={"Variables": variables},
    )


def warm_containers(lam: Any, name: str, count: int) -> None:
    """Start `count` containers of a function by invoking it that many times at once."""
    with ThreadPoolExecutor(count) as pool:
        list(
            pool.map(lambda _: lam.invoke(FunctionName=name, Payload=b'{"warm": 1}'), range(count))
        )


def create_queue(sqs: Any, name: str) -> tuple[str, str]:
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn


def fill_queue(sqs: Any, url: str, count: int) -> None:
    body = "x" * 100
    for start in range(0, count, 10):
        entries = [{"Id": str(i), "MessageBody": body} for i in range(min(10, count - start))]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)


def queue_depth(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


# Measurements -------------------------------------------------------------------------


def measure_baseline(url: str, queue_url: str, messages: int, consumers: int) -> dict[str, float]:
    """Drain the queue with ReceiveMessage + DeleteMessageBatch and return the rate.

    Concurrent receives may return one message twice when two requests race in
    moto, as SQS standard queues may (they deliver at least once). The rate counts
    distinct messages, and the duplicates are reported.
    """
    seen: set[str] = set()
    received = 0
    lock = threading.Lock()

    def consume() -> None:
        nonlocal received
        sqs = client("sqs", url)
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                return
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ]
            sqs.delete_message_batch(QueueUrl=queue_url, Entries=entries)
            with lock:
                received += len(batch)
                seen.update(m["MessageId"] for m in batch)

    started = time.perf_counter()
    with ThreadPoolExecutor(consumers) as pool:
        for future in [pool.submit(consume) for _ in range(consumers)]:
            future.result()
    elapsed = time.perf_counter() - started
    if len(seen) != messages:
        raise BenchmarkError(f"the baseline consumers received {len(seen)} of {messages} messages")
    return {"messages_per_second": messages / elapsed, "duplicates": received - len(seen)}


def measure_sqs_mapping(
    url: str, lam: Any, sqs: Any, role: str, messages: int, concurrency: int
) -> dict[str, float]:
    create_function(lam, "bench-sqs", QUICK_SOURCE, role, {})
    warm_containers(lam, "bench-sqs", concurrency)
    queue_url, arn = create_queue(sqs, "bench-mapped")
    uuid = lam.create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName="bench-sqs",
        BatchSize=10,
        ScalingConfig={"MaximumConcurrency": concurrency},
        Enabled=False,
    )["UUID"]
    wait_until(
        lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled", 30, "Disabled"
    )
    fill_queue(sqs, queue_url, messages)
    started = time.perf_counter()
    lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_until(lambda: queue_depth(sqs, queue_url) == 0, 600, "the mapped queue to empty")
    elapsed = time.perf_counter() - started
    lam.delete_event_source_mapping(UUID=uuid)
    return {"seconds": elapsed, "messages_per_second": messages / elapsed}


def measure_kinesis(
    url: str, lam: Any, sqs: Any, role: str, records: int, factor: int
) -> dict[str, float]:
    kinesis = client("kinesis", url)
    stream = f"bench-stream-{factor}"
    kinesis.create_stream(StreamName=stream, ShardCount=1)
    stream_arn = kinesis.describe_stream_summary(StreamName=stream)["StreamDescriptionSummary"][
        "StreamARN"
    ]
    count_url, _ = create_queue(sqs, f"bench-counts-{factor}")
    function = f"bench-kinesis-{factor}"
    create_function(lam, function, COUNTING_SOURCE, role, {"COUNT_URL": count_url})
    warm_containers(lam, function, factor)
    data = b"y" * 100
    for start in range(0, records, 500):
        batch = [
            {"Data": data, "PartitionKey": f"key-{index % 64}"}
            for index in range(start, min(records, start + 500))
        ]
        kinesis.put_records(StreamARN=stream_arn, Records=batch)
    uuid = lam.create_event_source_mapping(
        EventSourceArn=stream_arn,
        FunctionName=function,
        StartingPosition="TRIM_HORIZON",
        BatchSize=100,
        ParallelizationFactor=factor,
        Enabled=False,
    )["UUID"]
    wait_until(
        lambda: lam.get_event_source_mapping(UUID=uuid)["State"] == "Disabled", 30, "Disabled"
    )
    delivered = 0

    def all_delivered() -> bool:
        nonlocal delivered
        while True:
            batch = sqs.receive_message(QueueUrl=count_url, MaxNumberOfMessages=10).get(
                "Messages", []
            )
            if not batch:
                break
            delivered += sum(int(m["Body"]) for m in batch)
            entries = [
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
            ]
            sqs.delete_message_batch(QueueUrl=count_url, Entries=entries)
        return delivered >= records

    started = time.perf_counter()
    lam.update_event_source_mapping(UUID=uuid, Enabled=True)
    wait_until(all_delivered, 600, f"{records} Kinesis records")
    elapsed = time.perf_counter() - started
    lam.delete_event_source_mapping(UUID=uuid)
    return {"seconds": elapsed, "records_per_second": records / elapsed, "delivered": delivered}


def machine_facts() -> dict[str, Any]:
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu_model(),
        "python_version": platform.python_version(),
        "load_average_at_start": list(os.getloadavg()),
    }


def run(args: argparse.Namespace, server: Server) -> dict[str, Any]:
    server.wait_ready()
    url = server.url
    lam, sqs = client("lambda", url), client("sqs", url)
    role = create_role(url)
    results: dict[str, Any] = {"machine": machine_facts(), "settings": vars(args).copy()}

    baseline_url, _ = create_queue(sqs, "bench-baseline")
    baselines = {}
    for consumers in sorted({1, args.consumers}):
        fill_queue(sqs, baseline_url, args.messages)
        baselines[consumers] = measure_baseline(url, baseline_url, args.messages, consumers)
        print(
            f"SQS baseline, {consumers} consumer(s): "
            f"{baselines[consumers]['messages_per_second']:,.0f} messages/s "
            f"({baselines[consumers]['duplicates']:.0f} duplicates)",
            flush=True,
        )
    results["sqs_baseline"] = baselines

    mapped = measure_sqs_mapping(url, lam, sqs, role, args.messages, args.concurrency)
    best = max(baseline["messages_per_second"] for baseline in baselines.values())
    share = mapped["messages_per_second"] / best
    results["sqs_mapping"] = {**mapped, "share_of_best_baseline": share}
    print(
        f"SQS mapping (batch 10, concurrency {args.concurrency}): "
        f"{mapped['messages_per_second']:,.0f} messages/s in {mapped['seconds']:.2f} s, "
        f"{share:.0%} of the best baseline",
        flush=True,
    )
    for factor in (1, 4):
        kinesis = measure_kinesis(url, lam, sqs, role, args.records, factor)
        results[f"kinesis_parallelization_{factor}"] = kinesis
        print(
            f"Kinesis mapping (batch 100, ParallelizationFactor {factor}): "
            f"{kinesis['records_per_second']:,.0f} records/s in {kinesis['seconds']:.2f} s",
            flush=True,
        )
    share_met = share >= TARGET_SHARE_OF_BASELINE
    rate_met = mapped["messages_per_second"] >= TARGET_MESSAGES_PER_SECOND
    print(
        f"target: mapping >= {TARGET_SHARE_OF_BASELINE:.0%} of baseline: {'met' if share_met else 'NOT met'}"
    )
    print(
        f"target: mapping >= {TARGET_MESSAGES_PER_SECOND:,.0f} messages/s: {'met' if rate_met else 'NOT met'}"
    )
    print("machine:", json.dumps(results["machine"]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10000, help="SQS messages per queue")
    parser.add_argument("--records", type=int, default=50000, help="Kinesis records per run")
    parser.add_argument("--consumers", type=int, default=4, help="baseline consumer threads")
    parser.add_argument(
        "--concurrency", type=int, default=5, help="MaximumConcurrency of the SQS mapping"
    )
    parser.add_argument(
        "--time-limit", type=float, default=600, help="seconds before the run is aborted"
    )
    parser.add_argument("--json", action="store_true", help="also print every figure as JSON")
    parser.add_argument("--server-log", type=Path, help="keep the server's log in this file")
    args = parser.parse_args()

    def expire(signum: int, frame: Any) -> None:
        raise TimeLimitExceeded(f"time limit of {args.time_limit:.0f} s reached")

    signal.signal(signal.SIGALRM, expire)
    with tempfile.TemporaryDirectory(prefix="lambdasim-bench-") as work:
        log_path = args.server_log or Path(work) / "server.log"
        server = Server(Path(work), log_path)
        try:
            signal.setitimer(signal.ITIMER_REAL, args.time_limit)
            results = run(args, server)
        except (BenchmarkError, TimeLimitExceeded) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            server.stop()
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
