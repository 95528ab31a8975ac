"""Lambda API operations for layers."""

from __future__ import annotations

from .lambda_api import Handler

#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {}
