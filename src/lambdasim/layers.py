"""Lambda layers: published versions, their permissions, and the `/opt` they make.

A layer version is a zip published under a layer name. Versions count from 1 and
never renumber: deleting versions leaves a gap, and the next publish continues
after the highest number ever used. Each distinct zip is unpacked once (through a
`CodeStore`) and kept on disk after its version is deleted, because functions that
already reference a deleted version keep running with it, as on AWS.

A function's layers are merged into one folder that containers mount read-only at
`/opt`. The layers are applied in the order the function lists them: a later
layer's file replaces an earlier layer's file at the same path, and all other
files are kept. Each distinct ordered list of layer contents is merged once, into
a staging folder that is renamed into place when complete, so a merged folder is
either absent or whole. Files are hard-linked from the unpacked layers (same
modes, no copy) and copied only where the file system refuses a hard link.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import botocore
import trio

from .catalog import aws_timestamp
from .code_store import CodePackage, CodeStore
from .errors import (
    InvalidParameterValueException,
    PolicyLengthExceededException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from .function_settings import MAX_POLICY_SIZE

logger = logging.getLogger("lambdasim.layers")

#: Layers one function may reference.
MAX_LAYERS_PER_FUNCTION = 5
#: Page size of ListLayers and ListLayerVersions: default and maximum `MaxItems`.
MAX_LIST_ITEMS = 50


def _load_model_shapes() -> dict[str, Any]:
    path = f"{botocore.__path__[0]}/data/lambda/2015-03-31/service-2.json.gz"
    with gzip.open(path, "rt") as model_file:
        shapes: dict[str, Any] = json.load(model_file)["shapes"]
    return shapes


_SHAPES = _load_model_shapes()
#: Values of the model's `Runtime` and `Architecture` enums, in the model's order.
RUNTIMES: tuple[str, ...] = tuple(_SHAPES["Runtime"]["enum"])
ARCHITECTURES: tuple[str, ...] = tuple(_SHAPES["Architecture"]["enum"])
_LAYER_NAME_PATTERN: str = _SHAPES["LayerNameOrArn"]["pattern"]
_MAX_RUNTIMES: int = _SHAPES["CompatibleRuntimes"]["max"]
_MAX_ARCHITECTURES: int = _SHAPES["CompatibleArchitectures"]["max"]
_STATEMENT_ID_PATTERN: str = _SHAPES["StatementId"]["pattern"]
_PRINCIPAL_PATTERN: str = _SHAPES["LayerPermissionAllowedPrincipal"]["pattern"]
_ACTION_PATTERN: str = _SHAPES["LayerPermissionAllowedAction"]["pattern"]
_ORGANIZATION_ID_PATTERN: str = _SHAPES["OrganizationId"]["pattern"]
del _SHAPES

_LAYER_ARN = re.compile(
    r"arn:(?P<partition>aws[a-zA-Z-]*)?:lambda:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9-_]{1,140})"
)
# The pattern AWS names when GetLayerVersionByArn gets an ARN without a version.
_BY_ARN_PATTERN = (
    r"arn:(aws[a-zA-Z-]*)?:lambda:[a-z]{2}((-gov)|(-iso(b?)))?-[a-z]+-\d{1}:\d{12}:"
    r"layer:[a-zA-Z0-9-_]+:[0-9]+"
)
# The pattern and length limits AWS names when a function's `Layers` has a bad ARN.
_FUNCTION_LAYER_PATTERN = (
    r"(arn:[a-zA-Z0-9-]+:lambda:[a-zA-Z0-9-]+:\d{12}:layer:[a-zA-Z0-9-_]+:[0-9]+)|"
    r"(arn:[a-zA-Z0-9-]+:lambda:::awslayer:[a-zA-Z0-9-_]+)"
)
_FUNCTION_LAYER_MAX_LENGTH = 140
_VERSION_ARN = re.compile(
    r"arn:(?P<partition>[a-zA-Z0-9-]*):lambda:(?P<region>[a-zA-Z0-9-]*):(?P<account>\d{12}):"
    r"layer:(?P<name>[a-zA-Z0-9-_]+):(?P<version>[0-9]+)"
)

_NOT_FOUND = "The resource you requested does not exist."
_VERSION_TOO_LOW = "Layer Version Cannot be less than 1"
_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetLayerPolicy API to retrieve the latest Revision Id"
)


def _constraint(value: str, member: str, constraint: str) -> str:
    """Return one clause of AWS's validation message. `value` comes rendered, e.g. `'x'`."""
    return f"Value {value} at '{member}' failed to satisfy constraint: {constraint}"


def _validation_error(clauses: list[str]) -> ValidationException:
    count = len(clauses)
    plural = "s" if count > 1 else ""
    return ValidationException(f"{count} validation error{plural} detected: " + "; ".join(clauses))


def _invalid(value: str, member: str, constraint: str) -> ValidationException:
    """Return AWS's ValidationException for one member. `value` comes rendered, e.g. `'x'`."""
    return _validation_error([_constraint(value, member, constraint)])


def _check_pattern(value: object, member: str, pattern: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(pattern, value):
        raise _invalid(
            f"'{value}'", member, f"Member must satisfy regular expression pattern: {pattern}"
        )
    return value


def _check_length(value: object, member: str, maximum: int) -> str:
    if not isinstance(value, str):
        raise InvalidParameterValueException(f"{member} must be a string, got {value!r}")
    if len(value) > maximum:
        raise _invalid(
            f"'{value}'", member, f"Member must have length less than or equal to {maximum}"
        )
    return value


def _enum_set(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _string_list(value: object, key: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise InvalidParameterValueException(f"{key} must be a list of strings, got {value!r}")
    return tuple(value)


def _compatibility_errors(
    runtimes: tuple[str, ...] | None, architectures: tuple[str, ...] | None
) -> list[str]:
    """Return AWS's validation clauses for `CompatibleRuntimes` and `CompatibleArchitectures`."""
    clauses = []
    if runtimes is not None:
        rendered = f"'{_enum_set(runtimes)}'"
        if len(runtimes) > _MAX_RUNTIMES:
            clauses.append(
                _constraint(
                    rendered,
                    "compatibleRuntimes",
                    f"Member must have length less than or equal to {_MAX_RUNTIMES}",
                )
            )
        if any(runtime not in RUNTIMES for runtime in runtimes):
            clauses.append(
                _constraint(
                    rendered,
                    "compatibleRuntimes",
                    f"Member must satisfy enum value set: {_enum_set(RUNTIMES)}",
                )
            )
    if architectures is not None:
        rendered = f"'{_enum_set(architectures)}'"
        if len(architectures) > _MAX_ARCHITECTURES:
            clauses.append(
                _constraint(
                    rendered,
                    "compatibleArchitectures",
                    f"Member must have length less than or equal to {_MAX_ARCHITECTURES}",
                )
            )
        if any(architecture not in ARCHITECTURES for architecture in architectures):
            clauses.append(
                _constraint(
                    rendered,
                    "compatibleArchitectures",
                    "Member must satisfy constraint: [Member must satisfy enum value set: "
                    f"{_enum_set(ARCHITECTURES)}]",
                )
            )
    return clauses


def _check_filters(runtime: str | None, architecture: str | None) -> None:
    clauses = []
    if runtime is not None and runtime not in RUNTIMES:
        clauses.append(
            _constraint(
                f"'{runtime}'",
                "compatibleRuntime",
                f"Member must satisfy enum value set: {_enum_set(RUNTIMES)}",
            )
        )
    if architecture is not None and architecture not in ARCHITECTURES:
        clauses.append(
            _constraint(
                f"'{architecture}'",
                "compatibleArchitecture",
                f"Member must satisfy enum value set: {_enum_set(ARCHITECTURES)}",
            )
        )
    if clauses:
        raise _validation_error(clauses)


def _check_max_items(max_items: int | None) -> int:
    if max_items is None:
        return MAX_LIST_ITEMS
    if max_items < 1:
        raise _invalid(
            f"'{max_items}'", "maxItems", "Member must have value greater than or equal to 1"
        )
    if max_items > MAX_LIST_ITEMS:
        raise _invalid(
            f"'{max_items}'",
            "maxItems",
            f"Member must have value less than or equal to {MAX_LIST_ITEMS}",
        )
    return max_items


def _check_version_number(version: int) -> None:
    if version < 1:
        raise InvalidParameterValueException(_VERSION_TOO_LOW)


def _check_function_layers(arns: Sequence[str]) -> None:
    """Raise AWS's errors for a function's `Layers` that break a rule not needing a lookup."""
    for arn in arns:
        if (
            not isinstance(arn, str)
            or not 1 <= len(arn) <= _FUNCTION_LAYER_MAX_LENGTH
            or not re.fullmatch(_FUNCTION_LAYER_PATTERN, arn)
        ):
            raise _invalid(
                f"'{_enum_set([str(a) for a in arns])}'",
                "layers",
                "Member must satisfy constraint: [Member must have length less than or equal to "
                f"{_FUNCTION_LAYER_MAX_LENGTH}, Member must have length greater than or equal to "
                "1, Member must satisfy regular expression pattern: "
                f"{_FUNCTION_LAYER_PATTERN}, Member must not be null]",
            )
    if len(arns) > MAX_LAYERS_PER_FUNCTION:
        raise InvalidParameterValueException(
            f"Cannot reference more than {MAX_LAYERS_PER_FUNCTION} layers."
        )
    first_by_layer: dict[str, str] = {}
    for arn in arns:
        layer = arn.rsplit(":", 1)[0]
        if layer in first_by_layer:
            raise InvalidParameterValueException(
                "Two different versions of the same layer are not allowed to be referenced in "
                f"the same function. {first_by_layer[layer]} and {arn} are versions of the same "
                "layer."
            )
        first_by_layer[layer] = arn


# Values ----------------------------------------------------------------------------------


@attrs.frozen
class LayerVersion:
    """One published version of a layer."""

    name: str
    version: int
    #: The layer's ARN, without the version.
    layer_arn: str
    description: str
    #: When the version was published, in the format of `CreatedDate`.
    created_date: str
    #: The unpacked zip. Its folder `package.path` contains the files this version adds to `/opt`.
    package: CodePackage
    #: The zip as published, served as the version's `Content.Location`.
    zip_path: Path
    #: None when the publish request left the list out, so that responses omit it as on AWS.
    compatible_runtimes: tuple[str, ...] | None = None
    compatible_architectures: tuple[str, ...] | None = None
    license_info: str | None = None

    @property
    def arn(self) -> str:
        """The `LayerVersionArn`."""
        return f"{self.layer_arn}:{self.version}"

    @property
    def code_sha256(self) -> str:
        return self.package.sha256

    @property
    def code_size(self) -> int:
        return self.package.size

    def matches(self, runtime: str | None, architecture: str | None) -> bool:
        """Return whether the version lists `runtime` and `architecture` (None matches all)."""
        if runtime is not None and runtime not in (self.compatible_runtimes or ()):
            return False
        if architecture is not None and architecture not in (self.compatible_architectures or ()):
            return False
        return True


@attrs.frozen
class LayerPage:
    """One page of a listing and the marker of the next page, None on the last page."""

    items: list[LayerVersion]
    next_marker: str | None = None


@attrs.frozen
class LayerPolicy:
    """The resource-based policy of one layer version."""

    #: Statements by Sid, in the order they were added.
    statements: dict[str, dict[str, Any]]
    revision_id: str = attrs.field(factory=lambda: str(uuid.uuid4()))

    def document(self) -> dict[str, Any]:
        """Return the policy document that GetLayerVersionPolicy returns as a string."""
        statements = list(self.statements.values())
        return {"Version": "2012-10-17", "Id": "default", "Statement": statements}


def _policy_principal(principal: str) -> str | dict[str, str]:
    # NOTE: inferred from how AWS renders function policies, where an account id becomes
    # its root ARN. No recorded layer response with an account principal was checked.
    if principal == "*":
        return "*"
    if principal.isdigit():
        return {"AWS": f"arn:aws:iam::{principal}:root"}
    return {"AWS": principal}


# Merging ---------------------------------------------------------------------------------


def _remove_path(path: Path) -> None:
    """Remove whatever `path` is (file, link or folder tree), and do nothing if it is absent."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    else:
        path.unlink()


def _link_or_copy(source: str, destination: Path) -> None:
    try:
        os.link(source, destination)
    except OSError:
        # The folders are on different file systems or hard links are not permitted, so copy
        # the file with its mode.
        shutil.copy2(source, destination)


def overlay_tree(source: Path, target: Path) -> None:
    """Merge the tree `source` into the folder `target`, where entries of `source` win.

    A file or link of `source` replaces whatever `target` has at that path. A
    folder of `source` is merged into the folder at that path of `target`, which
    replaces a file or link there. Everything else in `target` stays. Links are
    recreated as links and never followed, so nothing outside `target` is written.
    Files of `source` are never modified, because a replaced entry is unlinked
    instead of written over. Blocking: call it from a worker thread.

    NOTE: AWS's result when one layer has a file where another has a folder is not
    known. Here the later layer's entry wins, as for two files.
    """
    with os.scandir(source) as entries:
        for entry in entries:
            destination = target / entry.name
            if entry.is_dir(follow_symlinks=False):
                if destination.is_symlink() or (destination.exists() and not destination.is_dir()):
                    destination.unlink()
                if not destination.is_dir():
                    destination.mkdir()
                    shutil.copymode(entry.path, destination)
                overlay_tree(Path(entry.path), destination)
                continue
            _remove_path(destination)
            if entry.is_symlink():
                os.symlink(os.readlink(entry.path), destination)
            else:
                _link_or_copy(entry.path, destination)


def _merge_into_place(sources: list[Path], final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".merge-", dir=final.parent))
    try:
        for source in sources:
            overlay_tree(source, staging)
        os.chmod(staging, 0o755)
        try:
            staging.rename(final)
        except OSError:
            # Another lambdasim process with the same data folder merged it first.
            if not final.is_dir():
                raise
            shutil.rmtree(staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _write_zip(data: bytes, path: Path) -> None:
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".zip-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as sink:
            sink.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# The store -------------------------------------------------------------------------------


@attrs.define(eq=False)
class LayerStore:
    """The layers of one account and region, with their files under `root`.

    `root` contains `unpacked/` (one folder per distinct zip), `zips/` (the zips as
    published) and `merged/` (one folder per distinct ordered list of layers).
    Layer names given to the methods may also be layer ARNs of this account and
    region. An ARN of another account or region names a layer that does not
    exist here.
    """

    root: Path = attrs.field(converter=Path)
    region: str = "us-east-1"
    account_id: str = "000000000000"
    _code: CodeStore = attrs.field(init=False)
    #: Published versions that are not deleted, by layer name and version number.
    _versions: dict[str, dict[int, LayerVersion]] = attrs.field(factory=dict, init=False)
    #: The highest version number ever published per layer name, deleted or not.
    _last_version: dict[str, int] = attrs.field(factory=dict, init=False)
    _policies: dict[tuple[str, int], LayerPolicy] = attrs.field(factory=dict, init=False)
    _merge_locks: dict[str, trio.Lock] = attrs.field(factory=dict, init=False)
    _limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(2), init=False
    )

    def __attrs_post_init__(self) -> None:
        self._code = CodeStore(self.root / "unpacked")

    # Names and ARNs --------------------------------------------------------------------

    def layer_arn(self, name: str) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:layer:{name}"

    def _parse_name(self, value: str) -> tuple[str, str]:
        """Return the layer name in `value` and its ARN, with "" as the name for another account.

        Raises ValidationException unless `value` is a layer name or layer ARN.
        """
        _check_pattern(value, "layerName", _LAYER_NAME_PATTERN)
        match = _LAYER_ARN.fullmatch(value)
        if match is None:
            return value, self.layer_arn(value)
        local = (
            match["partition"] == "aws"
            and match["region"] == self.region
            and match["account"] == self.account_id
        )
        return (match["name"] if local else ""), value

    def _lookup(self, name: str, version: int) -> LayerVersion | None:
        return self._versions.get(name, {}).get(version)

    def _require_version(self, layer_name: str, version: int) -> LayerVersion:
        """Return a version, or raise the not-found error of the policy operations, with its ARN."""
        _check_version_number(version)
        name, arn = self._parse_name(layer_name)
        found = self._lookup(name, version)
        if found is None:
            raise ResourceNotFoundException(f"Layer version {arn}:{version} does not exist.")
        return found

    # Versions --------------------------------------------------------------------------

    async def publish_layer_version(
        self,
        layer_name: str,
        zip_file: bytes,
        *,
        description: str | None = None,
        compatible_runtimes: Sequence[str] | None = None,
        compatible_architectures: Sequence[str] | None = None,
        license_info: str | None = None,
    ) -> LayerVersion:
        """Publish `zip_file` as the next version of a layer, creating the layer if new.

        Raises ValidationException for an invalid name, runtime or architecture, and
        InvalidParameterValueException for a zip that cannot be unpacked, in which
        case no version number is used up.
        """
        name, _ = self._parse_name(layer_name)
        if not name:
            raise InvalidParameterValueException(
                f"Layer {layer_name} is not in account {self.account_id} and region "
                f"{self.region}; publish it by name instead."
            )
        runtimes = None
        if compatible_runtimes is not None:
            runtimes = _string_list(compatible_runtimes, "CompatibleRuntimes")
        architectures = None
        if compatible_architectures is not None:
            architectures = _string_list(compatible_architectures, "CompatibleArchitectures")
        clauses = _compatibility_errors(runtimes, architectures)
        if clauses:
            raise _validation_error(clauses)
        description = _check_length(description or "", "description", 256)
        if license_info is not None:
            _check_length(license_info, "licenseInfo", 512)

        package = await self._code.store(zip_file)
        zip_path = self.root / "zips" / f"{package.path.name}.zip"
        await trio.to_thread.run_sync(_write_zip, zip_file, zip_path, limiter=self._limiter)

        # Nothing below awaits, so taking the number and storing the version is one step.
        number = self._last_version.get(name, 0) + 1
        self._last_version[name] = number
        published = LayerVersion(
            name=name,
            version=number,
            layer_arn=self.layer_arn(name),
            description=description,
            created_date=aws_timestamp(),
            package=package,
            zip_path=zip_path,
            compatible_runtimes=runtimes,
            compatible_architectures=architectures,
            license_info=license_info,
        )
        self._versions.setdefault(name, {})[number] = published
        logger.info("published layer %s version %d (%d bytes)", name, number, package.size)
        return published

    def get_layer_version(self, layer_name: str, version: int) -> LayerVersion:
        """Return one version, or raise ResourceNotFoundException if it is deleted or missing."""
        _check_version_number(version)
        name, _ = self._parse_name(layer_name)
        found = self._lookup(name, version)
        if found is None:
            raise ResourceNotFoundException(_NOT_FOUND)
        return found

    def get_layer_version_by_arn(self, arn: str) -> LayerVersion:
        """Return the version that a `LayerVersionArn` names."""
        _check_pattern(arn, "arn", _BY_ARN_PATTERN)
        match = _VERSION_ARN.fullmatch(arn)
        found = None
        if match and match["region"] == self.region and match["account"] == self.account_id:
            found = self._lookup(match["name"], int(match["version"]))
        if found is None:
            raise ResourceNotFoundException(_NOT_FOUND)
        return found

    async def read_content(self, layer_name: str, version: int) -> bytes:
        """Return the zip of a version as it was published."""
        found = self.get_layer_version(layer_name, version)
        return await trio.to_thread.run_sync(found.zip_path.read_bytes, limiter=self._limiter)

    def delete_layer_version(self, layer_name: str, version: int) -> None:
        """Delete a version and its policy. Deleting a missing version does nothing, as on AWS.

        The version's files stay on disk for the functions that still use it.
        """
        _check_version_number(version)
        name, _ = self._parse_name(layer_name)
        if self._versions.get(name, {}).pop(version, None) is not None:
            self._policies.pop((name, version), None)
            logger.info("deleted layer %s version %d", name, version)
        if name in self._versions and not self._versions[name]:
            del self._versions[name]

    def list_layers(
        self,
        *,
        compatible_runtime: str | None = None,
        compatible_architecture: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> LayerPage:
        """Return the newest version of each layer that matches the filters, by layer name.

        Layers without a matching version are left out. `marker` is the
        `next_marker` of the previous page.
        """
        _check_filters(compatible_runtime, compatible_architecture)
        size = _check_max_items(max_items)
        latest = []
        for name in sorted(self._versions):
            if marker and name <= marker:
                continue
            for number in sorted(self._versions[name], reverse=True):
                candidate = self._versions[name][number]
                if candidate.matches(compatible_runtime, compatible_architecture):
                    latest.append(candidate)
                    break
        page = latest[:size]
        next_marker = page[-1].name if len(latest) > size else None
        return LayerPage(page, next_marker)

    def list_layer_versions(
        self,
        layer_name: str,
        *,
        compatible_runtime: str | None = None,
        compatible_architecture: str | None = None,
        marker: str | None = None,
        max_items: int | None = None,
    ) -> LayerPage:
        """Return the versions of a layer that match the filters, newest first.

        A layer that does not exist has no versions. `marker` is the
        `next_marker` of the previous page.
        """
        _check_filters(compatible_runtime, compatible_architecture)
        size = _check_max_items(max_items)
        name, _ = self._parse_name(layer_name)
        below = None
        if marker:
            if not marker.isdigit():
                raise InvalidParameterValueException(f"Invalid Marker: {marker}")
            below = int(marker)
        versions = [
            found
            for number, found in sorted(self._versions.get(name, {}).items(), reverse=True)
            if (below is None or number < below)
            and found.matches(compatible_runtime, compatible_architecture)
        ]
        page = versions[:size]
        next_marker = str(page[-1].version) if len(versions) > size else None
        return LayerPage(page, next_marker)

    # Permissions -----------------------------------------------------------------------

    def add_layer_version_permission(
        self,
        layer_name: str,
        version: int,
        *,
        statement_id: str,
        action: str,
        principal: str,
        organization_id: str | None = None,
        revision_id: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """Add a statement to a version's policy, and return the statement and the new RevisionId.

        Raises ResourceConflictException when the statement id is taken and
        PreconditionFailedException when `revision_id` is not the policy's current one.
        """
        _check_length(statement_id, "statementId", 100)
        _check_pattern(statement_id, "statementId", _STATEMENT_ID_PATTERN)
        _check_pattern(action, "action", _ACTION_PATTERN)
        _check_pattern(principal, "principal", _PRINCIPAL_PATTERN)
        if organization_id is not None:
            _check_pattern(organization_id, "organizationId", _ORGANIZATION_ID_PATTERN)
        found = self._require_version(layer_name, version)
        key = (found.name, found.version)
        policy = self._policies.get(key)
        if policy is not None and statement_id in policy.statements:
            raise ResourceConflictException(
                f"The statement id ({statement_id}) provided already exists. Please provide a new "
                "statement id, or remove the existing statement."
            )
        if revision_id is not None and (policy is None or revision_id != policy.revision_id):
            raise PreconditionFailedException(_REVISION_MISMATCH)

        statement: dict[str, Any] = {
            "Sid": statement_id,
            "Effect": "Allow",
            "Principal": _policy_principal(principal),
            "Action": action,
            "Resource": found.arn,
        }
        if organization_id is not None:
            statement["Condition"] = {"StringEquals": {"aws:PrincipalOrgID": organization_id}}
        statements = {**(policy.statements if policy else {}), statement_id: statement}
        updated = LayerPolicy(statements)
        size = len(json.dumps(updated.document(), separators=(",", ":")).encode())
        if size > MAX_POLICY_SIZE:
            raise PolicyLengthExceededException(
                f"The final policy size ({size}) is bigger than the limit ({MAX_POLICY_SIZE})."
            )
        self._policies[key] = updated
        return statement, updated.revision_id

    def remove_layer_version_permission(
        self,
        layer_name: str,
        version: int,
        statement_id: str,
        *,
        revision_id: str | None = None,
    ) -> None:
        """Remove a statement from a version's policy. Removing the last one removes the policy."""
        _check_length(statement_id, "statementId", 100)
        _check_pattern(statement_id, "statementId", _STATEMENT_ID_PATTERN)
        found = self._require_version(layer_name, version)
        key = (found.name, found.version)
        policy = self._policies.get(key)
        if revision_id is not None and (policy is None or revision_id != policy.revision_id):
            raise PreconditionFailedException(_REVISION_MISMATCH)
        if policy is None or statement_id not in policy.statements:
            raise ResourceNotFoundException(
                f"Statement {statement_id} is not found in resource policy."
            )
        remaining = {sid: s for sid, s in policy.statements.items() if sid != statement_id}
        if remaining:
            self._policies[key] = LayerPolicy(remaining)
        else:
            del self._policies[key]

    def get_layer_version_policy(self, layer_name: str, version: int) -> LayerPolicy:
        """Return a version's policy, or raise ResourceNotFoundException if it has none."""
        found = self._require_version(layer_name, version)
        policy = self._policies.get((found.name, found.version))
        if policy is None:
            raise ResourceNotFoundException("No policy is associated with the given resource.")
        return policy

    # Functions -------------------------------------------------------------------------

    async def resolve_for_function(self, arns: Sequence[str]) -> list[LayerVersion]:
        """Return the versions that a function's `Layers` name, in the same order.

        Raises ValidationException for an ARN that is not a layer version ARN, for
        example one without the version. Raises InvalidParameterValueException for
        more than five layers, for two versions of one layer, for a layer of another
        region, and for a version that does not exist here. Every layer of another
        account is one that does not exist here.
        """
        await trio.lowlevel.checkpoint()
        _check_function_layers(arns)
        resolved = []
        for arn in arns:
            match = _VERSION_ARN.fullmatch(arn)
            found = None
            if match is not None:
                if match["region"] != self.region:
                    raise InvalidParameterValueException(
                        "Layers are not in the same region as the function. Layers are expected "
                        f"to be in region {self.region}."
                    )
                if match["partition"] == "aws" and match["account"] == self.account_id:
                    found = self._lookup(match["name"], int(match["version"]))
            if found is None:
                raise InvalidParameterValueException(f"Layer version {arn} does not exist.")
            resolved.append(found)
        return resolved

    async def merged_opt(self, versions: Sequence[LayerVersion]) -> Path:
        """Return a folder with the files of `versions` merged in order, for `/opt`.

        A later version's file replaces an earlier version's file at the same path,
        and all other files are kept. One version needs no merge and gets its unpacked
        folder. Each distinct ordered list of contents is merged once and reused,
        also for deleted versions. The folder must be treated as read-only.
        """
        if len(versions) == 1:
            await trio.lowlevel.checkpoint()
            return versions[0].package.path
        key = hashlib.sha256(
            "\n".join(version.code_sha256 for version in versions).encode()
        ).hexdigest()
        final = self.root / "merged" / key
        lock = self._merge_locks.setdefault(key, trio.Lock())
        async with lock:
            if not final.is_dir():
                sources = [version.package.path for version in versions]
                await trio.to_thread.run_sync(
                    _merge_into_place, sources, final, limiter=self._limiter
                )
                logger.info(
                    "merged layers %s into %s",
                    ", ".join(version.arn for version in versions),
                    final,
                )
        return final
