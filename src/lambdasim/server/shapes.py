"""Library objects rendered in the shapes of the botocore Lambda model."""

from __future__ import annotations

from typing import Any

from ..simulator import DeployedFunction


def function_configuration(deployed: DeployedFunction) -> dict[str, Any]:
    """Return the `FunctionConfiguration` of a function."""
    function = deployed.function
    configuration: dict[str, Any] = {
        "FunctionName": function.name,
        "FunctionArn": deployed.arn,
        "Runtime": function.runtime,
        "Role": function.role,
        "Handler": function.handler,
        "CodeSize": deployed.package.size,
        "Description": function.description,
        "Timeout": function.timeout,
        "MemorySize": function.memory_size,
        "LastModified": deployed.last_modified,
        "CodeSha256": deployed.package.sha256,
        "Version": deployed.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": deployed.revision_id,
        "State": deployed.state,
        "LastUpdateStatus": "Successful",
        "PackageType": "Zip",
        "Architectures": list(function.architectures),
        "EphemeralStorage": {"Size": function.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{function.name}"},
    }
    if function.environment:
        configuration["Environment"] = {"Variables": dict(function.environment)}
    return configuration
