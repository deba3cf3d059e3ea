"""Short-lived TURN credentials (coturn ``use-auth-secret``) handed out with WHEP, relaying real media.

coturn knows only the shared secret; the server names each credential ``<expiry>:<token id>`` and
signs it. The server's host candidates are on ::1 while the clients are IPv4, so both ends must relay:
the server with credentials it makes for its own peer connections, the point (relay-only) with the
ones from the ``Link`` header of its OPTIONS request. An expired or forged credential is refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
from aioice import turn
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from media.transport.turn_rest import rest_credentials
from bench.clip import test_clip
from bench.server_process import ServerProcess
from bench.whip_publisher import publish
from tests.support.server import ServerFactory
from tests.support.peers import subscribe
from tests.support.turn_server import TurnServer
from tests.test_turn_relay import _candidate_types

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

SECRET = "coturn-static-auth-secret-for-tests"


@pytest.fixture(scope="module")
def secret_turn(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with TurnServer(tmp_path_factory.mktemp("turn-rest"), "--use-auth-secret", f"--static-auth-secret={SECRET}") as turn:
        yield turn.port


@pytest.fixture(scope="module")
def rest_server(secret_turn: int, start_server: ServerFactory) -> Iterator[ServerProcess]:
    with start_server(
        "turn-rest-server",
        workers=1,
        ice_host_addresses=["::1"],
        ice_servers=[{"urls": f"turn:127.0.0.1:{secret_turn}"}],
        turn_secret=SECRET,
        turn_credential_ttl=3600,
    ) as srv:
        yield srv


def ice_links(server: ServerProcess, path: str, token: str | None) -> list[dict[str, str]]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    r = httpx.options(f"{server.url}{path}", headers=headers, timeout=10)
    assert r.status_code == 204, r.text
    out = []
    for link in r.headers.get_list("link"):
        url = re.match(r"<([^>]*)>", link).group(1)  # type: ignore[union-attr]
        params = dict(re.findall(r'(\w[\w-]*)="([^"]*)"', link))
        out.append({"urls": url, **params})
    return out


async def allocates(port: int, username: str, password: str) -> bool:
    """Whether coturn grants a relay allocation with these credentials (bounded: 10 s)."""
    try:
        transport, _ = await asyncio.wait_for(
            turn.create_turn_endpoint(asyncio.DatagramProtocol, ("127.0.0.1", port), username, password), 10
        )
    except Exception:
        return False
    transport.close()
    return True


async def test_short_lived_credentials_relay_media(rest_server: ServerProcess, secret_turn: int) -> None:
    server = rest_server
    conf = server.create_conference("TURN theo mã")
    with server.admin() as c:
        point = c.post(f"/api/v1/conferences/{conf}/tokens", json={"role": "point", "name": "Xã núi"}).json()
    assert ice_links(server, f"/whep/{conf}", None) == []  # nothing for an anonymous caller

    before = time.time()
    (link,) = ice_links(server, f"/whep/{conf}", point["token"])
    expiry, user = link["username"].split(":", 1)
    assert user == point["id"]  # coturn's log names the token, not its secret
    assert before + 3600 - 5 <= int(expiry) <= time.time() + 3600 + 5
    expected = base64.b64encode(hmac.new(SECRET.encode(), link["username"].encode(), hashlib.sha1).digest()).decode()
    assert link["credential"] == expected and link["credential-type"] == "password"
    assert SECRET not in json.dumps(link)

    # coturn refuses an expired credential and one signed with another secret, and takes ours.
    assert await allocates(secret_turn, link["username"], link["credential"])
    assert not await allocates(secret_turn, *rest_credentials(SECRET, -60, "someone"))
    assert not await allocates(secret_turn, *rest_credentials("guessed-secret", 3600, "someone"))

    pub = await publish(server.url, conf, server.token(conf, "speaker"), test_clip())
    relay_only = RTCConfiguration(
        iceServers=[RTCIceServer(urls=link["urls"], username=link["username"], credential=link["credential"])],
        iceTransportPolicy=RTCIceTransportPolicy.RELAY,
    )
    sub = await subscribe(server.url, conf, point["token"], config=relay_only)
    try:
        assert _candidate_types(sub.pc.localDescription.sdp) == {"relay"}
        assert "relay" in _candidate_types(sub.pc.remoteDescription.sdp)  # the server's own REST credentials
        assert await sub.wait_frames(60, timeout=30), f"only {sub.frames} frames"
        assert sub.sizes == {(1280, 720)} and sub.audio_frames > 0
    finally:
        await sub.close()
        await pub.close()
