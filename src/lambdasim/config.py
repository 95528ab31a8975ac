"""Settings of a simulator, read from `LAMBDASIM_*` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import attrs

DEFAULT_PORT = 4599
DEFAULT_IMAGE_REGISTRY = "public.ecr.aws/lambda"


def _default_data_dir() -> Path:
    return Path.home() / ".cache" / "lambdasim"


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be positive, got {value!r}")


@attrs.frozen
class Config:
    """Settings shared by the library and the server.

    `endpoint_url` is the address that function containers use to reach the
    embedded AWS services. It defaults to the server's own address on loopback,
    which containers on the host network can reach.
    """

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    account_id: str = attrs.field(default="000000000000")
    region: str = "us-east-1"
    #: Seconds an idle execution environment is kept before it is stopped.
    keep_alive: float = attrs.field(default=300.0, validator=_positive)
    image_registry: str = DEFAULT_IMAGE_REGISTRY
    docker_network: str = "host"
    data_dir: Path = attrs.field(factory=_default_data_dir, converter=Path)
    #: Lifetime in seconds of the execution role's STS session. AWS allows 900 to
    #: 43200. Down to 301 is accepted so that tests can see a recycle, which happens
    #: 300 s before expiry, within seconds.
    role_session_seconds: int = attrs.field(default=3600)
    endpoint_url: str | None = None
    #: Concurrent invocations allowed across all functions, as AWS's account limit.
    account_concurrency: int = attrs.field(default=1000, validator=_positive)
    #: Seconds before the first retry of a failed asynchronous invocation; the
    #: second waits twice as long. AWS waits about 60 s.
    async_retry_delay: float = attrs.field(default=60.0, validator=_positive)
    #: Seconds an update reports LastUpdateStatus InProgress, during which another
    #: update gets AWS's conflict error. 0 completes updates at once.
    update_seconds: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    #: Container starts in flight at once. On a 2-core machine the engine starts
    #: about 10 containers a second whatever the number in flight; 4 reaches that
    #: rate, and more only makes each start slower (benchmarks/pool.py).
    max_concurrent_starts: int = attrs.field(default=4, validator=_positive)

    @account_id.validator
    def _check_account_id(self, attribute: attrs.Attribute[str], value: str) -> None:
        if len(value) != 12 or not value.isdigit():
            raise ValueError(f"account_id must be 12 digits, got {value!r}")

    @role_session_seconds.validator
    def _check_session(self, attribute: attrs.Attribute[int], value: int) -> None:
        if not 301 <= value <= 43200:
            raise ValueError(f"role_session_seconds must be between 301 and 43200, got {value!r}")

    @property
    def container_endpoint_url(self) -> str:
        """Return the AWS endpoint URL handed to function containers."""
        if self.endpoint_url:
            return self.endpoint_url
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"http://{host}:{self.port}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Build a configuration from `LAMBDASIM_*` variables; `overrides` win."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        readers: dict[str, tuple[str, type]] = {
            "host": ("LAMBDASIM_HOST", str),
            "port": ("LAMBDASIM_PORT", int),
            "account_id": ("LAMBDASIM_ACCOUNT_ID", str),
            "region": ("LAMBDASIM_REGION", str),
            "keep_alive": ("LAMBDASIM_LAMBDA_KEEP_ALIVE", float),
            "image_registry": ("LAMBDASIM_LAMBDA_IMAGE_REGISTRY", str),
            "docker_network": ("LAMBDASIM_DOCKER_NETWORK", str),
            "data_dir": ("LAMBDASIM_DATA_DIR", str),
            "role_session_seconds": ("LAMBDASIM_ROLE_SESSION_SECONDS", int),
            "endpoint_url": ("LAMBDASIM_ENDPOINT_URL", str),
            "account_concurrency": ("LAMBDASIM_ACCOUNT_CONCURRENCY", int),
            "max_concurrent_starts": ("LAMBDASIM_MAX_CONCURRENT_STARTS", int),
            "async_retry_delay": ("LAMBDASIM_ASYNC_RETRY_DELAY", float),
            "update_seconds": ("LAMBDASIM_LAMBDA_UPDATE_SECONDS", float),
        }
        for field, (variable, kind) in readers.items():
            raw = env.get(variable)
            if raw is None or raw == "":
                continue
            try:
                values[field] = kind(raw)
            except ValueError:
                raise ValueError(f"{variable}={raw!r} is not a valid {kind.__name__}") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        return cls(**values)  # type: ignore[arg-type]
