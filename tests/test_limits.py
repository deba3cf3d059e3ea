"""Caps against one caller exhausting the server: body sizes, WHEP sessions, WebSockets, request fields.

Real server processes, real aiortc peers, real WebSocket clients, all on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from aiortc import RTCPeerConnection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from bench.whip_publisher import NO_ICE
from tests.support.peers import delete_session, subscribe
from tests.support.server import ServerFactory, ServerProcess

pytestmark = pytest.mark.slow  # over ~10 s: `make test-fast` leaves it out

MAX_BODY = 64 * 1024
MAX_UPLOAD = 1024 * 1024
WS_MAX_BYTES = 2048
WS_BURST = 10


@pytest.fixture(scope="module")
def capped(start_server: ServerFactory) -> Iterator[ServerProcess]:
    """A server with small limits, subscribers on a media worker (counted through the worker pool)."""
    with start_server(
        "capped",
        workers=2,
        max_body_bytes=MAX_BODY,
        max_upload_bytes=MAX_UPLOAD,
        max_whep_per_conference=3,
        max_websockets_per_token=2,
        ws_max_message_bytes=WS_MAX_BYTES,
        ws_message_burst=WS_BURST,
        ws_messages_per_second=1,
    ) as srv:
        yield srv


# --- request bodies ------------------------------------------------------------------------------
def _open(server: ServerProcess) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setblocking(False)
    return sock


def _read_response(sock: socket.socket, timeout: float) -> bytes:
    """What the server answered within ``timeout`` (up to the end of a small JSON body)."""
    data = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        if length and len(body) >= length[0]:
            break
    return data


def _status_and_detail(response: bytes) -> tuple[int, str]:
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["detail"]


@pytest.mark.parametrize("as_viewer", [False, True], ids=["anonymous", "viewer"])
def test_huge_declared_body_is_refused_before_it_is_sent(server: ServerProcess, as_viewer: bool) -> None:
    """A 50 MB POST to a JSON route: the 413 arrives while not one byte of the body has been sent
    (FastAPI would read and parse the body before looking at the token)."""
    cid = server.create_conference()
    auth = f"Authorization: Bearer {server.token(cid, 'viewer')}\r\n" if as_viewer else ""
    sock = _open(server)
    try:
        sock.sendall(
            f"POST /api/v1/conferences/{cid}/agenda HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}"
            f"Content-Type: application/json\r\nContent-Length: {50 * 1024 * 1024}\r\n\r\n".encode()
        )
        response = _read_response(sock, timeout=10)
    finally:
        sock.close()
    assert response, "no answer within 10 s: the server is waiting for the 50 MB body"
    status, detail = _status_and_detail(response)
    assert status == 413 and "larger than the limit" in detail, response


def test_chunked_body_is_cut_off_once_over_the_limit(server: ServerProcess) -> None:
    """Without a Content-Length, the server answers 413 as soon as what arrived passes the limit:
    the client has sent a fraction of its 32 MB when the answer is there."""
    sock = _open(server)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 128 * 1024)  # little in flight beyond what was read
    chunk = b"x" * 65536
    sent = 0
    response = b""
    try:
        sock.sendall(
            b"POST /api/v1/conferences HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        deadline = time.monotonic() + 30
        while sent < 32 * 1024 * 1024 and time.monotonic() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                response = _read_response(sock, timeout=5)
                break
            if writable:
                sock.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
        if not response:
            sock.sendall(b"0\r\n\r\n")
            response = _read_response(sock, timeout=10)
    finally:
        sock.close()
    status, detail = _status_and_detail(response)
    assert status == 413 and "larger than the limit" in detail, (response, sent)
    assert sent < 12 * 1024 * 1024, f"the server let {sent} bytes in before answering"


def test_bodies_within_their_limits_still_work(capped: ServerProcess) -> None:
    """JSON just under the body limit is parsed; uploads and imports past it keep their own limit."""
    cid = capped.create_conference()
    with capped.admin() as c:
        agenda = [{"title": f"item {i}", "notes": "n" * 380} for i in range(150)]
        assert MAX_BODY - 8192 < len(json.dumps(agenda)) < MAX_BODY
        r = c.put(f"/api/v1/conferences/{cid}/agenda", json=agenda)
        assert r.status_code == 200 and len(r.json()) == 150, r.text[:300]
        r = c.put(f"/api/v1/conferences/{cid}/agenda", json=agenda + agenda[:20])
        assert r.status_code == 413 and f"limit of {MAX_BODY} bytes" in r.json()["detail"]
        # a CSV import of 4x the JSON limit (under the upload limit) goes through
        rows = "".join(f"Xã số {i:06d},commune,,{i % 50}\n" for i in range(MAX_BODY * 4 // 20))
        r = c.post(f"/api/v1/conferences/{cid}/points/import", content="name,level,parent,summoned\n" + rows,
                   headers={"Content-Type": "text/csv"})
        assert r.status_code in (200, 201), r.text[:500]
        pdf = b"%PDF-1.4\n" + b"0" * (MAX_BODY * 3) + b"\n%%EOF\n"
        r = c.post(f"/api/v1/conferences/{cid}/materials", files={"file": ("big.pdf", pdf, "application/pdf")})
        assert r.status_code == 201, r.text
        # ... and past the upload limit they are refused with their own message
        r = c.post(f"/api/v1/conferences/{cid}/materials",
                   files={"file": ("huge.pdf", pdf + b"0" * MAX_UPLOAD, "application/pdf")})
        assert r.status_code == 413 and "limit" in r.json()["detail"]
    # anonymous: refused before the endpoint allows an upload's size
    r = httpx.post(f"{capped.url}/api/v1/conferences/{cid}/materials",
                   files={"file": ("big.pdf", pdf, "application/pdf")}, timeout=15)
    assert r.status_code == 401


@pytest.mark.parametrize(
    "path, method, body",
    [
        ("/api/v1/conferences", "POST", {"title": "t", "description": "d" * 20_001}),
        ("/api/v1/conferences/{cid}/tokens", "POST", {"role": "viewer", "subject_id": "s" * 33}),
        ("/api/v1/conferences/{cid}/agenda", "PUT", [{"title": "item"}] * 201),
        ("/api/v1/conferences/{cid}/agenda", "POST", {"title": "item", "notes": "n" * 10_001}),
        ("/api/v1/conferences/{cid}/points/tokens", "POST", {"point_ids": ["p"] * 20_001}),
        ("/api/v1/conferences/{cid}/members/tokens", "POST", {"member_ids": ["m" * 33]}),
        ("/api/v1/conferences/{cid}", "PATCH", {"description": "d" * 20_001}),
    ],
)
def test_request_fields_have_length_limits(server: ServerProcess, path: str, method: str, body: object) -> None:
    cid = server.create_conference()
    with server.admin() as c:
        r = c.request(method, path.format(cid=cid), json=body)
    assert r.status_code == 422, r.text[:300]
    assert any("too_long" in d["type"] for d in r.json()["detail"]), r.text[:300]


# --- WHEP sessions -------------------------------------------------------------------------------
async def _offer() -> str:
    pc = RTCPeerConnection(NO_ICE)
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def _post_offer(client: httpx.AsyncClient, url: str, token: str, sdp: str) -> httpx.Response:
    return await client.post(url, content=sdp, headers={"Authorization": f"Bearer {token}",
                                                        "Content-Type": "application/sdp"})


async def test_third_whep_session_of_one_token_is_refused(server: ServerProcess) -> None:
    """Default cap: 2 sessions per token. The third gets 429 + Retry-After; other tokens are unaffected,
    and ending a session frees its place."""
    cid = server.create_conference()
    point, other = server.token(cid, "point", "Xã A"), server.token(cid, "point", "Xã B")
    subs = [await subscribe(server.url, cid, point) for _ in range(2)]
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            r = await _post_offer(client, f"{server.url}/whep/{cid}", point, await _offer())
        assert r.status_code == 429, r.text
        assert int(r.headers["retry-after"]) > 0 and "limit 2" in r.json()["detail"]
        subs.append(await subscribe(server.url, cid, other))  # another point joins as usual
        assert await delete_session(subs.pop(0).location, point) == 200
        subs.append(await subscribe(server.url, cid, point))  # its place was freed at once
    finally:
        for sub in subs:
            await sub.close()


async def test_simultaneous_whep_requests_of_one_token_cannot_all_pass(capped: ServerProcess) -> None:
    """Four offers with one token at once: exactly two sessions, the others 429 (places are taken
    before negotiating, not counted after)."""
    cid = capped.create_conference()
    point = capped.token(cid, "point", "Xã C")
    offers = [await _offer() for _ in range(4)]
    async with httpx.AsyncClient(timeout=30) as client:
        rs = await asyncio.gather(*[_post_offer(client, f"{capped.url}/whep/{cid}", point, o) for o in offers])
        statuses = sorted(r.status_code for r in rs)
        assert statuses == [201, 201, 429, 429], [r.text for r in rs]
        for r in rs:
            if r.status_code == 201:
                await delete_session(str(httpx.URL(capped.url).join(r.headers["location"])), point)


async def test_whep_sessions_per_conference_are_capped(capped: ServerProcess) -> None:
    cid, elsewhere = capped.create_conference(), capped.create_conference()
    subs = [await subscribe(capped.url, cid, capped.token(cid, "point", f"Xã {i}")) for i in range(3)]
    try:
        async with httpx.AsyncClient(timeout=20) as client:
            r = await _post_offer(client, f"{capped.url}/whep/{cid}", capped.token(cid, "point", "Xã 4"),
                                  await _offer())
        assert r.status_code == 429 and "limit 3" in r.json()["detail"] and r.headers["retry-after"]
        subs.append(await subscribe(capped.url, elsewhere, capped.token(elsewhere, "point")))
    finally:
        for sub in subs:
            await sub.close()


# --- WebSockets ----------------------------------------------------------------------------------
def _ws_url(server: ServerProcess, cid: str, token: str) -> str:
    return f"ws://127.0.0.1:{server.port}/ws/conferences/{cid}?token={token}"


def _connect(url: str):  # type: ignore[no-untyped-def]
    return connect(url, proxy=None, compression=None, open_timeout=10, close_timeout=5, max_size=None)


async def _snapshot(ws) -> dict:  # type: ignore[no-untyped-def]
    message = json.loads(await asyncio.wait_for(ws.recv(), 10))
    assert message["type"] == "snapshot"
    return message


async def _pong(ws) -> bool:  # type: ignore[no-untyped-def]
    """Ping over the channel; True when the pong comes (other events may arrive first)."""
    await ws.send(json.dumps({"type": "ping"}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
        if message["type"] == "pong":
            return True
    return False


async def _closed_with(ws) -> int | None:  # type: ignore[no-untyped-def]
    """The close code once the server closes the socket (bounded: 10 s, 200 messages)."""
    try:
        for _ in range(200):
            await asyncio.wait_for(ws.recv(), 10)
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        return None  # still open
    return None


async def test_websockets_per_token_are_capped(capped: ServerProcess) -> None:
    cid = capped.create_conference()
    token, other = capped.token(cid, "point", "Xã D"), capped.token(cid, "point", "Xã E")
    first = await _connect(_ws_url(capped, cid, token))
    second = await _connect(_ws_url(capped, cid, token))
    try:
        await _snapshot(first)
        await _snapshot(second)
        with pytest.raises(InvalidStatus) as refused:
            await _connect(_ws_url(capped, cid, token))
        response = refused.value.response
        assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
        assert b"limit 2" in response.body
        async with _connect(_ws_url(capped, cid, other)) as third:  # another token is not affected
            await _snapshot(third)
        await first.close()
        for _ in range(50):  # the closed socket's place is released when its endpoint returns
            try:
                again = await _connect(_ws_url(capped, cid, token))
                break
            except InvalidStatus:
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the token's place did not come back after a socket closed")
        await _snapshot(again)
        await again.close()
        assert await _pong(second)
    finally:
        await first.close()
        await second.close()


async def test_oversized_websocket_message_closes_only_that_socket(capped: ServerProcess) -> None:
    cid = capped.create_conference()
    bystander = await _connect(_ws_url(capped, cid, capped.token(cid, "point", "Xã F")))
    sender = await _connect(_ws_url(capped, cid, capped.token(cid, "point", "Xã G")))
    try:
        await _snapshot(bystander)
        await _snapshot(sender)
        await sender.send(json.dumps({"type": "ping", "pad": "x" * WS_MAX_BYTES}))
        assert await _closed_with(sender) == 1009
        assert await _pong(bystander)
    finally:
        await sender.close()
        await bystander.close()


async def test_websocket_message_flood_closes_only_that_socket(capped: ServerProcess) -> None:
    cid = capped.create_conference()
    token = capped.token(cid, "point", "Xã H")
    bystander = await _connect(_ws_url(capped, cid, token))  # even one of the same token
    flooder = await _connect(_ws_url(capped, cid, token))
    try:
        await _snapshot(bystander)
        await _snapshot(flooder)
        assert await _pong(flooder)  # a few messages are fine
        for _ in range(WS_BURST * 5):
            try:
                await flooder.send(json.dumps({"type": "ping"}))
            except ConnectionClosed:
                break
        assert await _closed_with(flooder) == 1008
        assert await _pong(bystander)
    finally:
        await flooder.close()
        await bystander.close()
