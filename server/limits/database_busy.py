"""A request that waited the pool's whole timeout for a database connection gets 503, not 500.

Under overload (a thousand home viewers polling the server directly, each reload checking its token)
every pooled connection can stay taken for longer than SQLAlchemy's pool timeout. That is the server
being busy, not broken: 503 with ``Retry-After`` tells a player or a client to come back, and the log
says why once every ``LOG_EVERY`` seconds instead of once per refused request.
"""

from __future__ import annotations

import logging
import time

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout

log = logging.getLogger(__name__)

RETRY_AFTER = "2"
LOG_EVERY = 10.0


def answer_database_busy(app: FastAPI) -> None:
    """Install the handler on ``app``."""
    last_logged = [0.0]
    refused = [0]

    @app.exception_handler(PoolTimeout)
    async def database_busy(request: Request, exc: PoolTimeout) -> JSONResponse:
        refused[0] += 1
        now = time.monotonic()
        if now - last_logged[0] >= LOG_EVERY:
            log.warning("database connections all taken for the pool's timeout: %d request(s) answered 503 "
                        "(the server is overloaded; put the nginx front before home viewers)", refused[0])
            last_logged[0], refused[0] = now, 0
        return JSONResponse({"detail": "the server is busy: try again shortly"}, status_code=503,
                            headers={"Retry-After": RETRY_AFTER})
