"""Property tests of zip unpacking: whatever the archive, nothing escapes."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from lambdasim.code_store import unpack_zip
from lambdasim.errors import InvalidParameterValueException
from lambdasim.testing import make_zip

_segment = st.sampled_from(["a", "b", "..", ".", "lib", "x.py", ""])
_member = (
    st.lists(_segment, min_size=1, max_size=4)
    .map("/".join)
    .filter(lambda name: name.strip("/.") != "" and not name.endswith("/"))
)
_mode = st.sampled_from([0o644, 0o755, 0o600, 0o400, 0o700])


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_member, st.tuples(st.binary(max_size=64), _mode), min_size=1, max_size=6))
def test_unpack_never_escapes(members: dict[str, tuple[bytes, int]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        destination = root / "pkg"
        destination.mkdir()
        data = make_zip(
            {name: content for name, (content, _) in members.items()},
            modes={name: mode for name, (_, mode) in members.items()},
        )
        try:
            unpack_zip(data, destination)
        except (
            InvalidParameterValueException,
            IsADirectoryError,
            NotADirectoryError,
            FileExistsError,
        ):
            pass
        outside = [path for path in root.iterdir() if path != destination]
        assert outside == []
        for folder, _dirs, files in os.walk(destination):
            for name in files:
                path = Path(folder, name)
                assert path.resolve().is_relative_to(destination.resolve())
                assert stat.S_IMODE(path.stat().st_mode) & 0o444 == 0o444
