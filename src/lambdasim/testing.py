"""Helpers for testing functions and lambdasim itself."""

from __future__ import annotations

import io
import zipfile


def make_zip(files: dict[str, str | bytes], modes: dict[str, int] | None = None) -> bytes:
    """Return a zip archive of `files` with Unix modes: 0644 unless `modes` names another."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | (modes or {}).get(name, 0o644)) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()
