"""Lambda API operations for tags, resource policies and asynchronous invocation settings."""

from __future__ import annotations

from .lambda_api import Handler

#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {}
