"""lambdasim: run AWS Lambda functions locally in real containers.

The library runs functions in Docker containers made from the official Lambda
runtime images and embeds the other AWS services (through moto) that functions
call. `lambdasim.server` puts an AWS-compatible HTTP endpoint in front of it.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .catalog import Alias, Catalog
from .code_store import CodePackage, CodeStore
from .config import Config
from .credentials import Credentials, CredentialsProvider
from .environment import ExecutionEnvironment, FunctionSnapshot
from .errors import (
    InvalidParameterValueException,
    InvalidRequestContentException,
    LambdaError,
    ResourceConflictException,
    ResourceNotFoundException,
    ServiceException,
    TooManyRequestsException,
    ValidationException,
)
from .function import Function, ImageConfig
from .invoke import InvocationResult
from .layers import LayerStore
from .pool import ContainerPool, EnvironmentInfo, PoolStatistics
from .services import EmbeddedServices
from .simulator import DeployedFunction, Simulator, open_simulator

try:
    __version__ = version("lambdasim")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "Alias",
    "Catalog",
    "EnvironmentInfo",
    "ImageConfig",
    "LayerStore",
    "PoolStatistics",
    "CodePackage",
    "CodeStore",
    "Config",
    "ContainerPool",
    "Credentials",
    "CredentialsProvider",
    "DeployedFunction",
    "EmbeddedServices",
    "ExecutionEnvironment",
    "Function",
    "FunctionSnapshot",
    "InvalidParameterValueException",
    "InvalidRequestContentException",
    "InvocationResult",
    "LambdaError",
    "ResourceConflictException",
    "ResourceNotFoundException",
    "ServiceException",
    "Simulator",
    "TooManyRequestsException",
    "ValidationException",
    "__version__",
    "open_simulator",
]
