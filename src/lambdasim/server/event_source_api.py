"""Lambda API operations for event source mappings."""

from __future__ import annotations

from .lambda_api import Handler

#: Handlers by operation name of the botocore Lambda model.
HANDLERS: dict[str, Handler] = {}
