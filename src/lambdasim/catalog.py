"""The functions of a simulator: `$LATEST`, published versions and aliases.

A function name with a qualifier resolves to one `DeployedFunction`. The
qualifier `$LATEST` (or none) names the editable latest version, and a number
names a published version. Anything else is an alias, which routes to its
version, or with routing weights sometimes to its additional version.
"""

from __future__ import annotations

import datetime
import random
import re
import uuid
from collections.abc import Callable

import attrs

from .arns import function_arn, parse_function_ref
from .code_store import CodePackage
from .environment import FunctionSnapshot
from .errors import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ResourceConflictException,
    ResourceNotFoundException,
    ValidationException,
)
from .function import Function
from .runtimes import PLATFORMS, lookup_runtime

LATEST = "$LATEST"
_ALIAS_NAME = re.compile(r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)")
_VERSION = re.compile(r"[0-9]+")
_REVISION_MISMATCH = (
    "The Revision Id provided does not match the latest Revision Id. Call the "
    "GetFunction/GetAlias API to retrieve the latest Revision Id"
)


def aws_timestamp() -> str:
    """Return the current time in the format of `LastModified`."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+0000"


def _new_revision_id() -> str:
    return str(uuid.uuid4())


@attrs.define(eq=False)
class DeployedFunction:
    """One version of a function: its definition, unpacked code and service-side state.

    `$LATEST` changes in place with every update; published versions never change.
    """

    function: Function
    #: The unpacked zip; None for image functions.
    package: CodePackage | None
    #: The unqualified ARN of the function.
    arn: str
    image: str
    #: Unique per simulator; environments are kept per revision.
    revision: int = 1
    revision_id: str = attrs.field(factory=_new_revision_id)
    last_modified: str = attrs.field(factory=aws_timestamp)
    version: str = LATEST
    description: str | None = None
    state: str = "Active"
    state_reason: str | None = None
    state_reason_code: str | None = None
    #: None until the first update, as AWS omits the field for new functions.
    last_update_status: str | None = None
    #: For image functions: the pinned digest and `repository@digest` as AWS reports it.
    image_digest: str | None = None
    resolved_image_uri: str | None = None
    #: ENTRYPOINT, CMD and WORKDIR from the image's own configuration.
    image_defaults: dict[str, object] = attrs.field(factory=dict)
    #: The merged layer folder mounted at /opt, and the layers' ARNs and sizes.
    opt_path: str | None = None
    layer_sizes: tuple[tuple[str, int], ...] = ()
    #: The snapshot of `revision`. Every change to a field the snapshot copies bumps the revision.
    _snapshot: FunctionSnapshot | None = attrs.field(default=None, init=False)

    @property
    def code_sha256(self) -> str:
        """Return `CodeSha256`: of the zip, or the image digest's hex for image functions."""
        if self.package is None:
            return (self.image_digest or "").removeprefix("sha256:")
        return self.package.sha256

    @property
    def code_size(self) -> int:
        return 0 if self.package is None else self.package.size

    @property
    def name(self) -> str:
        return self.function.name

    @property
    def qualified_arn(self) -> str:
        """Return the ARN AWS reports as `FunctionArn`: qualified for published versions."""
        return self.arn if self.version == LATEST else f"{self.arn}:{self.version}"

    def snapshot(self) -> FunctionSnapshot:
        """Return the frozen view that execution environments run."""
        if self._snapshot is None or self._snapshot.revision != self.revision:
            self._snapshot = self._make_snapshot()
        return self._snapshot

    def _make_snapshot(self) -> FunctionSnapshot:
        function = self.function
        if function.package_type == "Image":
            config = function.image_config
            command = config.command if config and config.command else None
            defaults_cmd = self.image_defaults.get("Cmd")
            handler_source = command or (
                tuple(defaults_cmd) if isinstance(defaults_cmd, list) else None
            )
            return FunctionSnapshot(
                name=function.name,
                version=self.version,
                revision=self.revision,
                arn=self.arn,
                runtime=None,
                handler=handler_source[0] if handler_source else None,
                role=function.role,
                timeout=function.timeout,
                memory_size=function.memory_size,
                environment=dict(function.environment),
                code_path=None,
                image=self.image,
                opt_path=self.opt_path,
                command=command,
                entrypoint=config.entry_point if config and config.entry_point else None,
                working_dir=config.working_directory if config else None,
                platform=PLATFORMS[function.architectures[0]],
            )
        return FunctionSnapshot(
            name=function.name,
            version=self.version,
            revision=self.revision,
            arn=self.arn,
            runtime=lookup_runtime(function.runtime) if function.runtime else None,
            handler=function.handler,
            role=function.role,
            timeout=function.timeout,
            memory_size=function.memory_size,
            environment=dict(function.environment),
            code_path=str(self.package.path) if self.package else None,
            image=self.image,
            opt_path=self.opt_path,
            platform=PLATFORMS[function.architectures[0]],
        )


@attrs.define(eq=False)
class Alias:
    """A named pointer to a version, optionally sharing traffic with a second one."""

    name: str
    arn: str
    function_version: str
    description: str = ""
    #: Additional version → share of invocations (0.0 to 1.0).
    weights: dict[str, float] = attrs.field(factory=dict)
    revision_id: str = attrs.field(factory=_new_revision_id)

    def pick_version(self, chooser: Callable[[], float] = random.random) -> str:
        """Return the version an invocation through this alias runs."""
        draw = chooser()
        for version, weight in self.weights.items():
            if draw < weight:
                return version
            draw -= weight
        return self.function_version


@attrs.define(eq=False)
class FunctionEntry:
    """Everything of one function name."""

    latest: DeployedFunction
    versions: dict[str, DeployedFunction] = attrs.field(factory=dict)
    aliases: dict[str, Alias] = attrs.field(factory=dict)
    last_version: int = 0
    #: The `$LATEST` revision that the newest published version copied.
    published_revision: int | None = None


@attrs.frozen
class Resolved:
    """A function reference resolved to the version that serves it."""

    entry: FunctionEntry
    deployed: DeployedFunction
    #: The qualifier as given (`None`, `$LATEST`, a version or an alias name).
    qualifier: str | None
    alias: Alias | None = None

    @property
    def invoked_arn(self) -> str:
        """Return the ARN the caller used, qualified as it was."""
        arn = self.deployed.arn
        return f"{arn}:{self.qualifier}" if self.qualifier else arn


@attrs.define(eq=False)
class Catalog:
    """The functions of one simulator, by name."""

    region: str
    account_id: str
    _entries: dict[str, FunctionEntry] = attrs.field(factory=dict, init=False)
    _revisions: int = attrs.field(default=0, init=False)

    def next_revision(self) -> int:
        self._revisions += 1
        return self._revisions

    def arn(self, name: str, qualifier: str | None = None) -> str:
        return function_arn(self.region, self.account_id, name, qualifier)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def entries(self) -> list[FunctionEntry]:
        return [self._entries[name] for name in sorted(self._entries)]

    def add(self, deployed: DeployedFunction) -> None:
        if deployed.name in self._entries:
            raise ResourceConflictException(f"Function already exist: {deployed.name}")
        self._entries[deployed.name] = FunctionEntry(latest=deployed)

    def remove(self, name: str) -> FunctionEntry:
        return self._entries.pop(name)

    def entry(self, name: str, qualifier: str | None = None) -> FunctionEntry:
        """Return the entry that `name` (a name or ARN) refers to, ignoring qualifiers."""
        ref = parse_function_ref(
            name, region=self.region, account_id=self.account_id, qualifier=qualifier
        )
        entry = self._entries.get(ref.name)
        if entry is None:
            raise ResourceNotFoundException(f"Function not found: {self.arn(ref.name)}")
        return entry

    def resolve(
        self,
        name: str,
        qualifier: str | None = None,
        *,
        route: bool = False,
        missing_suffix: str | None = None,
    ) -> Resolved:
        """Resolve a function name or ARN and qualifier to one version.

        With `route`, an alias with routing weights picks its version at random, as
        invocations do. `missing_suffix` is the qualifier named in the not-found
        message when none was given (Invoke names `$LATEST`).
        """
        ref = parse_function_ref(
            name, region=self.region, account_id=self.account_id, qualifier=qualifier
        )
        entry = self._entries.get(ref.name)
        named_qualifier = ref.qualifier or missing_suffix
        not_found = ResourceNotFoundException(
            f"Function not found: {self.arn(ref.name, named_qualifier)}"
        )
        if entry is None:
            raise not_found
        if ref.qualifier in (None, LATEST):
            return Resolved(entry, entry.latest, ref.qualifier)
        if _VERSION.fullmatch(ref.qualifier):
            deployed = entry.versions.get(ref.qualifier)
            if deployed is None:
                raise not_found
            return Resolved(entry, deployed, ref.qualifier)
        alias = entry.aliases.get(ref.qualifier)
        if alias is None:
            raise not_found
        version = alias.pick_version() if route else alias.function_version
        return Resolved(entry, self._version(entry, version), ref.qualifier, alias)

    def _version(self, entry: FunctionEntry, version: str) -> DeployedFunction:
        if version == LATEST:
            return entry.latest
        deployed = entry.versions.get(version)
        if deployed is None:
            raise ResourceNotFoundException(
                f"Function not found: {self.arn(entry.latest.name, version)}"
            )
        return deployed

    # Versions ----------------------------------------------------------------------

    def publish_version(
        self,
        name: str,
        *,
        code_sha256: str | None = None,
        description: str | None = None,
        revision_id: str | None = None,
    ) -> DeployedFunction:
        """Publish `$LATEST` as a new version, or return the newest one if nothing changed."""
        entry = self.entry(name)
        latest = entry.latest
        if revision_id is not None and revision_id != latest.revision_id:
            raise PreconditionFailedException(_REVISION_MISMATCH)
        if code_sha256 is not None and code_sha256 != latest.code_sha256:
            raise InvalidParameterValueException(
                f"CodeSHA256 ({code_sha256}) is different from current CodeSHA256 in $LATEST "
                f"({latest.code_sha256}). Please try again with the CodeSHA256 in $LATEST."
            )
        if entry.published_revision == latest.revision and entry.versions:
            return entry.versions[str(entry.last_version)]
        entry.last_version += 1
        version = str(entry.last_version)
        published = attrs.evolve(
            latest,
            version=version,
            revision=self.next_revision(),
            revision_id=_new_revision_id(),
            last_modified=aws_timestamp(),
            description=description if description is not None else latest.function.description,
        )
        entry.versions[version] = published
        entry.published_revision = latest.revision
        return published

    def delete_version(self, name: str, version: str) -> DeployedFunction:
        entry = self.entry(name)
        if version not in entry.versions:
            raise ResourceNotFoundException(
                f"Function not found: {self.arn(entry.latest.name, version)}"
            )
        users = sorted(
            a.name
            for a in entry.aliases.values()
            if a.function_version == version or version in a.weights
        )
        if users:
            raise ResourceConflictException(
                "Unable to delete version because the following aliases reference it: "
                f"[{', '.join(users)}]"
            )
        return entry.versions.pop(version)

    # Aliases -----------------------------------------------------------------------

    def _check_alias_target(
        self, entry: FunctionEntry, version: str, weights: dict[str, float]
    ) -> None:
        if version != LATEST and not _VERSION.fullmatch(version):
            raise ValidationException(
                f"1 validation error detected: Value '{version}' at 'functionVersion' failed to "
                "satisfy constraint: Member must satisfy regular expression pattern: "
                r"(\$LATEST|[0-9]+)"
            )
        self._version(entry, version)
        if len(weights) > 1:
            raise InvalidParameterValueException(
                "Number of items in AdditionalVersionWeights cannot be greater than 1"
            )
        for extra, weight in weights.items():
            self._version(entry, extra)
            if extra == version:
                raise InvalidParameterValueException(
                    f"Alias can't point to the same version {version} in both "
                    "FunctionVersion and AdditionalVersionWeights."
                )
            if (
                isinstance(weight, bool)
                or not isinstance(weight, int | float)
                or not 0 <= weight <= 1
            ):
                raise ValidationException(
                    f"1 validation error detected: Value '{weight}' at "
                    "'routingConfig.additionalVersionWeights' failed to satisfy constraint: "
                    "Map value must satisfy constraint: [Member must have value less than or "
                    "equal to 1.0, Member must have value greater than or equal to 0.0]"
                )
            if version == LATEST or extra == LATEST:
                raise InvalidParameterValueException(
                    "$LATEST is not supported for an alias pointing to more than 1 version"
                )

    def create_alias(
        self,
        name: str,
        alias_name: str,
        version: str,
        *,
        description: str = "",
        weights: dict[str, float] | None = None,
    ) -> Alias:
        entry = self.entry(name)
        if not _ALIAS_NAME.fullmatch(alias_name) or len(alias_name) > 128:
            raise ValidationException(
                f"1 validation error detected: Value '{alias_name}' at 'name' failed to satisfy "
                "constraint: Member must satisfy regular expression pattern: "
                "(?!^[0-9]+$)([a-zA-Z0-9-_]+)"
            )
        arn = self.arn(entry.latest.name, alias_name)
        if alias_name in entry.aliases:
            raise ResourceConflictException(f"Alias already exists: {arn}")
        self._check_alias_target(entry, version, weights or {})
        alias = Alias(alias_name, arn, version, description, dict(weights or {}))
        entry.aliases[alias_name] = alias
        return alias

    def get_alias(self, name: str, alias_name: str) -> Alias:
        entry = self.entry(name)
        alias = entry.aliases.get(alias_name)
        if alias is None:
            raise ResourceNotFoundException(
                f"Cannot find alias arn: {self.arn(entry.latest.name, alias_name)}"
            )
        return alias

    def update_alias(
        self,
        name: str,
        alias_name: str,
        *,
        version: str | None = None,
        description: str | None = None,
        weights: dict[str, float] | None = None,
        revision_id: str | None = None,
    ) -> Alias:
        entry = self.entry(name)
        alias = self.get_alias(name, alias_name)
        if revision_id is not None and revision_id != alias.revision_id:
            raise PreconditionFailedException(_REVISION_MISMATCH)
        new_version = version if version is not None else alias.function_version
        new_weights = dict(weights) if weights is not None else alias.weights
        self._check_alias_target(entry, new_version, new_weights)
        alias.function_version = new_version
        alias.weights = new_weights
        if description is not None:
            alias.description = description
        alias.revision_id = _new_revision_id()
        return alias

    def delete_alias(self, name: str, alias_name: str) -> None:
        entry = self.entry(name)
        entry.aliases.pop(alias_name, None)
