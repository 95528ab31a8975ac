"""Per-function settings kept beside the function: tags, resource policies and
asynchronous invocation configurations."""

from __future__ import annotations

import attrs


@attrs.define(eq=False)
class FunctionSettings:
    """Settings of every function of one simulator, keyed by function name."""

    def forget(self, function_name: str) -> None:
        """Drop every setting of a deleted function."""
