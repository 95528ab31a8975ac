"""Lambda runtimes and the official images that run them.

The repositories and tags are those of AWS's base images in the
`public.ecr.aws/lambda` gallery, e.g. `python3.12` → `python:3.12`.
The registry part is configurable so that a mirror can stand in for it.
"""

from __future__ import annotations

import attrs

from .errors import InvalidParameterValueException


@attrs.frozen
class Runtime:
    """One supported runtime and where its image lives."""

    name: str
    repository: str
    tag: str
    #: Family for behaviour that differs by language (handler format, init errors).
    family: str

    def image(self, registry: str) -> str:
        """Return the image reference under `registry`."""
        return f"{registry.rstrip('/')}/{self.repository}:{self.tag}"


def _table() -> dict[str, Runtime]:
    rows: list[Runtime] = []
    for minor in range(9, 15):
        rows.append(Runtime(f"python3.{minor}", "python", f"3.{minor}", "python"))
    for major in (18, 20, 22, 24):
        rows.append(Runtime(f"nodejs{major}.x", "nodejs", str(major), "nodejs"))
    for major in (11, 17, 21):
        rows.append(Runtime(f"java{major}", "java", str(major), "java"))
    rows.append(Runtime("dotnet8", "dotnet", "8", "dotnet"))
    for minor in (2, 3, 4):
        rows.append(Runtime(f"ruby3.{minor}", "ruby", f"3.{minor}", "ruby"))
    rows.append(Runtime("provided.al2", "provided", "al2", "provided"))
    rows.append(Runtime("provided.al2023", "provided", "al2023", "provided"))
    return {row.name: row for row in rows}


RUNTIMES: dict[str, Runtime] = _table()

#: Runtimes AWS no longer accepts for new or updated functions, with the
#: replacement its error message recommends.
DEPRECATED_RUNTIMES: dict[str, str] = {
    "python2.7": "python3.12",
    "python3.6": "python3.12",
    "python3.7": "python3.12",
    "python3.8": "python3.12",
    "nodejs": "nodejs20.x",
    "nodejs4.3": "nodejs20.x",
    "nodejs4.3-edge": "nodejs20.x",
    "nodejs6.10": "nodejs20.x",
    "nodejs8.10": "nodejs20.x",
    "nodejs10.x": "nodejs20.x",
    "nodejs12.x": "nodejs20.x",
    "nodejs14.x": "nodejs20.x",
    "nodejs16.x": "nodejs20.x",
    "java8": "java21",
    "dotnetcore1.0": "dotnet8",
    "dotnetcore2.0": "dotnet8",
    "dotnetcore2.1": "dotnet8",
    "dotnetcore3.1": "dotnet8",
    "dotnet6": "dotnet8",
    "go1.x": "provided.al2023",
    "ruby2.5": "ruby3.3",
    "ruby2.7": "ruby3.3",
    "provided": "provided.al2023",
}


#: The image platform of each Lambda architecture.
PLATFORMS = {"x86_64": "linux/amd64", "arm64": "linux/arm64"}


def lookup_runtime(name: str) -> Runtime:
    """Return the runtime called `name`, or raise AWS's error for it."""
    runtime = RUNTIMES.get(name)
    if runtime is not None:
        return runtime
    replacement = DEPRECATED_RUNTIMES.get(name)
    if replacement is not None:
        raise InvalidParameterValueException(
            f"The runtime parameter of {name} is no longer supported for creating or "
            f"updating AWS Lambda functions. We recommend you use the new runtime "
            f"({replacement}) while creating or updating functions."
        )
    valid = ", ".join(RUNTIMES)
    raise InvalidParameterValueException(
        f"Value '{name}' at 'runtime' failed to satisfy constraint: Member must satisfy "
        f"enum value set: [{valid}] or be a valid ARN"
    )
