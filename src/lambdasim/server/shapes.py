"""Library objects rendered in the shapes of the botocore Lambda model."""

from __future__ import annotations

from typing import Any

from ..catalog import Alias, DeployedFunction


def function_configuration(
    deployed: DeployedFunction, *, creating: bool = False, updating: bool = False
) -> dict[str, Any]:
    """Return the `FunctionConfiguration` of one version of a function.

    `creating` renders the CreateFunction response and `updating` an update's
    response, which AWS sends before the change has taken effect.
    """
    function = deployed.function
    description = deployed.description if deployed.description is not None else function.description
    configuration: dict[str, Any] = {
        "FunctionName": function.name,
        "FunctionArn": deployed.qualified_arn,
        "Role": function.role,
        "CodeSize": deployed.code_size,
        "Description": description,
        "Timeout": function.timeout,
        "MemorySize": function.memory_size,
        "LastModified": deployed.last_modified,
        "CodeSha256": deployed.code_sha256,
        "Version": deployed.version,
        "TracingConfig": {"Mode": "PassThrough"},
        "RevisionId": deployed.revision_id,
        "State": deployed.state,
        "PackageType": function.package_type,
        "Architectures": list(function.architectures),
        "EphemeralStorage": {"Size": function.ephemeral_storage},
        "SnapStart": {"ApplyOn": "None", "OptimizationStatus": "Off"},
        "LoggingConfig": {"LogFormat": "Text", "LogGroup": f"/aws/lambda/{function.name}"},
    }
    if function.runtime:
        configuration["Runtime"] = function.runtime
    if function.handler:
        configuration["Handler"] = function.handler
    if function.image_config is not None:
        image_config: dict[str, Any] = {}
        if function.image_config.entry_point is not None:
            image_config["EntryPoint"] = list(function.image_config.entry_point)
        if function.image_config.command is not None:
            image_config["Command"] = list(function.image_config.command)
        if function.image_config.working_directory is not None:
            image_config["WorkingDirectory"] = function.image_config.working_directory
        configuration["ImageConfigResponse"] = {"ImageConfig": image_config}
    if deployed.layer_sizes:
        configuration["Layers"] = [
            {"Arn": arn, "CodeSize": size} for arn, size in deployed.layer_sizes
        ]
    if function.environment:
        configuration["Environment"] = {"Variables": dict(function.environment)}
    if function.dead_letter_target:
        configuration["DeadLetterConfig"] = {"TargetArn": function.dead_letter_target}
    if deployed.state_reason:
        configuration["StateReason"] = deployed.state_reason
        configuration["StateReasonCode"] = deployed.state_reason_code
    if deployed.last_update_status is not None:
        configuration["LastUpdateStatus"] = deployed.last_update_status
    if creating:
        configuration["State"] = "Pending"
        configuration["StateReason"] = "The function is being created."
        configuration["StateReasonCode"] = "Creating"
        configuration.pop("LastUpdateStatus", None)
    if updating:
        configuration["LastUpdateStatus"] = "InProgress"
        configuration["LastUpdateStatusReason"] = "The function is being created."
        configuration["LastUpdateStatusReasonCode"] = "Creating"
    return configuration


def alias_configuration(alias: Alias) -> dict[str, Any]:
    """Return the `AliasConfiguration` of an alias."""
    shape: dict[str, Any] = {
        "AliasArn": alias.arn,
        "Name": alias.name,
        "FunctionVersion": alias.function_version,
        "Description": alias.description,
        "RevisionId": alias.revision_id,
    }
    if alias.weights:
        shape["RoutingConfig"] = {"AdditionalVersionWeights": dict(alias.weights)}
    return shape
