"""``python -m server.main``: run the server with embedded defaults and print where to go."""

from __future__ import annotations

import logging
import sys

import uvicorn

from server.app import create_app
from server.settings import get_settings


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aioice").setLevel(logging.WARNING)  # four lines per ICE check: noise in a join storm
    settings = get_settings()
    app = create_app(settings)
    base = settings.base_url
    # On a terminal the operator needs the token to log in; under a service manager stdout goes to
    # the journal, which more people read than should hold the admin token.
    admin = settings.admin_token if sys.stdout.isatty() else _where_admin_token_is(settings)
    print(
        "\nĐiểm Cầu is starting\n"
        f"  speaker page          {base}/speaker.html\n"
        f"  connection point page {base}/point.html\n"
        f"  organiser dashboard   {base}/dashboard.html\n"
        f"  viewer / replay       {base}/viewer.html  {base}/replay.html\n"
        f"  API docs (OpenAPI)    {base}/docs\n"
        f"  admin token           {admin}\n"
        f"  data dir              {settings.data_dir.resolve()}\n",
        flush=True,
    )
    # Keep-alive 30 s: points poll and re-use connections; with uvicorn's 5 s an idle connection can
    # be closed just as a client sends its next request on it (a failed WHEP POST in a join storm).
    uvicorn.run(
        app, host=settings.host, port=settings.port, log_level="info", ws="websockets-sansio",
        timeout_keep_alive=30, access_log=settings.access_log,
        ws_max_size=settings.ws_max_message_bytes,  # a bigger frame is refused as it arrives (close 1009)
        # asyncio's own loop even where uvloop is installed: the relay sends on the ICE sockets
        # themselves, which uvloop hides behind pseudo-sockets (and it measured no faster here).
        loop="asyncio",
        # HTTPS served by the server itself (browsers give the camera only to a secure context).
        ssl_certfile=settings.tls_cert_file, ssl_keyfile=settings.tls_key_file,
        # Behind nginx or Caddy: the scheme and client address they forward, from them only.
        proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
    )


def _where_admin_token_is(settings) -> str:  # type: ignore[no-untyped-def]
    return (f"DIEMCAU_ADMIN_TOKEN, or else {(settings.data_dir / 'admin_token').resolve()}"
            " (not printed: stdout is not a terminal)")


if __name__ == "__main__":
    main()
