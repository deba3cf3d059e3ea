"""Keep credentials out of the logs: ``token=`` (and a signed link's ``sig=``) in logged URLs.

uvicorn logs every request's path with its query string (``uvicorn.access``) and every WebSocket
handshake's (``uvicorn.error``); media players and WebSockets carry their token there. Log files are
read and kept by more people, and for longer, than the tokens should be.
"""

from __future__ import annotations

import logging
import re

SECRET_PARAMS = re.compile(r"(?i)(?<=[?&])(token|sig)=[^&\s\"']*")
LOGGERS = ("uvicorn.access", "uvicorn.error")


def redact(text: str) -> str:
    return SECRET_PARAMS.sub(r"\1=[redacted]", text)


class RedactSecrets(logging.Filter):
    """Rewrites a record's message arguments (and message) with secrets replaced; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        return True


def install() -> None:
    """Filter uvicorn's loggers; called by the lifespan, after uvicorn has configured them."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())
