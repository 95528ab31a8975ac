"""Deployment packages unpacked to folders that containers mount read-only.

Each distinct zip is unpacked once, into a folder named after its SHA-256, so
functions and versions that share code share the folder. File modes stored in the
archive are kept (a `bootstrap` must stay executable), and no member may be
written outside its folder.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import attrs
import trio

from .errors import InvalidParameterValueException

logger = logging.getLogger("lambdasim.code_store")

#: Largest unzipped package AWS accepts for a zip function (250 MB).
MAX_UNZIPPED_BYTES = 250 * 1024 * 1024

_UNZIP_FAILED = "Could not unzip uploaded file. Please check your file, then try to upload again."


@attrs.frozen
class CodePackage:
    """An unpacked deployment package."""

    #: Base64 of the zip's SHA-256, as AWS reports `CodeSha256`.
    sha256: str
    #: Size of the zip in bytes, as AWS reports `CodeSize`.
    size: int
    path: Path


def code_sha256(data: bytes) -> str:
    """Return the base64-encoded SHA-256 of `data`, the form of AWS's `CodeSha256`."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def _member_path(root: Path, name: str) -> Path:
    """Return where archive member `name` goes under `root`, rejecting escapes."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        raise InvalidParameterValueException(
            f"{_UNZIP_FAILED} The archive member {name!r} points outside the package."
        )
    return root.joinpath(*[part for part in posix.parts if part not in ("", ".")])


def unpack_zip(data: bytes, destination: Path) -> None:
    """Unpack zip `data` into the empty folder `destination`, keeping file modes.

    Blocking: call it from a worker thread.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise InvalidParameterValueException(_UNZIP_FAILED) from exc
    with archive:
        total = sum(info.file_size for info in archive.infolist())
        if total > MAX_UNZIPPED_BYTES:
            raise InvalidParameterValueException(
                f"Unzipped size must be smaller than {MAX_UNZIPPED_BYTES} bytes, got {total} bytes"
            )
        for info in archive.infolist():
            target = _member_path(destination, info.filename)
            mode = info.external_attr >> 16
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if stat.S_ISLNK(mode):
                link = archive.read(info).decode()
                resolved = (target.parent / link).resolve()
                if not resolved.is_relative_to(destination.resolve()):
                    raise InvalidParameterValueException(
                        f"{_UNZIP_FAILED} The link {info.filename!r} points outside the package."
                    )
                os.symlink(link, target)
                continue
            try:
                with archive.open(info) as source, open(target, "wb") as sink:
                    shutil.copyfileobj(source, sink)
            except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
                raise InvalidParameterValueException(_UNZIP_FAILED) from exc
            permissions = stat.S_IMODE(mode) or 0o644
            # Containers may run the code as another user: keep everything readable.
            os.chmod(target, permissions | 0o444)
    # Folders written by mkdir follow the umask; make them traversable for any user.
    for folder, _dirs, _files in os.walk(destination):
        os.chmod(folder, 0o755)


@attrs.define(eq=False)
class CodeStore:
    """Unpacked deployment packages under `root`, one folder per distinct zip."""

    root: Path = attrs.field(converter=Path)
    _limiter: trio.CapacityLimiter = attrs.field(
        factory=lambda: trio.CapacityLimiter(2), init=False
    )
    _locks: dict[str, trio.Lock] = attrs.field(factory=dict, init=False)

    async def store(self, data: bytes) -> CodePackage:
        """Unpack zip `data` unless an identical zip was unpacked before.

        Raises InvalidParameterValueException for an archive that cannot be unpacked.
        The folder appears only once it is complete, so a failed unpack leaves nothing.
        """
        digest = hashlib.sha256(data).hexdigest()
        package = CodePackage(sha256=code_sha256(data), size=len(data), path=self.root / digest)
        lock = self._locks.setdefault(digest, trio.Lock())
        async with lock:
            if not package.path.is_dir():
                await trio.to_thread.run_sync(
                    self._unpack_into_place, data, package.path, limiter=self._limiter
                )
                logger.info("unpacked %d byte package into %s", len(data), package.path)
        return package

    def _unpack_into_place(self, data: bytes, final: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.root))
        try:
            unpack_zip(data, staging)
            staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
