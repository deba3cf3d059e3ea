"""The media half of ``diemcau check``: the ICE servers the point would get, then a short WHEP receive
straight to the server's UDP port, and one relayed through the server's TURN.

Both receives are real WHEP sessions of the point's token, closed at once: what the point page
would do, from the same network, so a pass means the page will play.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCIceServer,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcconfiguration import RTCIceTransportPolicy

from server.preflight_web import FAIL, HTTP_TIMEOUT, OK, SKIP, WARN, Finding, Target, token_refused

GATHER_TIMEOUT = 5.0  # our own candidates, a TURN allocation among them (well under 1 s when reachable)
CONNECT_TIMEOUT = 15.0  # ICE and DTLS; a blocked port shows as no connection in this time
FRAMES_TIMEOUT = 8.0  # a live hall's first picture after connecting
_LINK = re.compile(r'<([^>]*)>\s*;(.*)')
_PARAM = re.compile(r'([\w-]+)="([^"]*)"')
_CANDIDATE = re.compile(r"^a=candidate:\S+ \d+ (udp|tcp) \d+ (\S+) (\d+) typ (\w+)", re.I | re.M)


def ice_servers_from_links(links: list[str]) -> list[dict[str, str | None]]:
    """``Link: <turn:…>; rel="ice-server"; username="…"; credential="…"`` headers as ICE server dicts."""
    servers = []
    for link in links:
        for part in re.split(r",\s*(?=<)", link):
            m = _LINK.match(part.strip())
            if not m:
                continue
            params = dict(_PARAM.findall(m.group(2)))
            if params.get("rel") == "ice-server":
                servers.append({"urls": m.group(1), "username": params.get("username"),
                                "credential": params.get("credential")})
    return servers


def media_ports(answer_sdp: str) -> str:
    """The server's candidate addresses and ports from its answer, e.g. ``udp 203.0.113.5:40000``."""
    seen = sorted({f"{proto.lower()} {addr}:{port}" for proto, addr, port, _ in _CANDIDATE.findall(answer_sdp)})
    return ", ".join(seen) or "?"


async def check_ice_config(target: Target) -> Finding:
    """What the point page is told (OPTIONS with its token): the STUN/TURN servers, TURN credentials."""
    url = f"{target.base_url}/whep/{target.conference}"
    try:
        async with target.client() as client:
            r = await client.options(url, headers={"Authorization": f"Bearer {target.token}"})
    except httpx.HTTPError as exc:
        return Finding("ICE", FAIL, f"Không hỏi được cấu hình ICE: {exc}.", f"Cannot ask for the ICE configuration: {exc}.")
    if r.status_code == 401:
        return token_refused("ICE")
    if r.status_code in (403, 404):
        return Finding("ICE", FAIL, f"Đường link không thuộc hội nghị này hoặc không dùng để xem ({r.status_code}).",
                       f"The link does not belong to this conference or cannot watch ({r.status_code}).")
    if r.status_code >= 400:
        return Finding("ICE", FAIL, f"Máy chủ trả lời lỗi {r.status_code}.", f"The server answered {r.status_code}.")
    target.ice_servers = ice_servers_from_links(r.headers.get_list("link"))
    turn = [s["urls"] for s in target.ice_servers if s["urls"].startswith(("turn:", "turns:"))]
    if turn:
        return Finding("ICE", OK, f"Máy chủ cấp máy chủ TURN: {', '.join(turn)}.",
                       f"The server hands out TURN: {', '.join(turn)}.")
    return Finding("ICE", OK, "Máy chủ không cấp máy chủ TURN: hình chỉ đi thẳng qua cổng UDP.",
                   "The server hands out no TURN server: media goes straight to its UDP port only.")


async def _count_frames(track: MediaStreamTrack, counts: dict[str, int]) -> None:
    with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
        while True:
            await track.recv()
            counts[track.kind] = counts.get(track.kind, 0) + 1


async def receive(target: Target, config: RTCConfiguration) -> tuple[int | str, str, dict[str, int]]:
    """A short WHEP receive: ``(outcome, the server's candidates, frames per kind)``, where outcome is
    the HTTP status of a refused offer, ``"connected"`` or ``"no-connection"``."""
    pc = RTCPeerConnection(config)
    counts: dict[str, int] = {}
    tasks: list[asyncio.Task[None]] = []
    pc.on("track", lambda track: tasks.append(asyncio.ensure_future(_count_frames(track, counts))))
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    headers = {"Authorization": f"Bearer {target.token}"}
    location = ""
    try:
        try:  # gathering waits on every STUN/TURN server: a blocked one would hold it for half a minute
            await asyncio.wait_for(pc.setLocalDescription(await pc.createOffer()), GATHER_TIMEOUT)
        except asyncio.TimeoutError:
            return "no-connection", "?", counts
        async with target.client(HTTP_TIMEOUT * 3) as client:
            r = await client.post(f"{target.base_url}/whep/{target.conference}", content=pc.localDescription.sdp,
                                  headers={**headers, "Content-Type": "application/sdp"})
            if r.status_code != 201:
                return r.status_code, r.text[:200], counts
            location = str(httpx.URL(target.base_url).join(r.headers["location"]))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            ports = media_ports(r.text)
            connected = await _wait(lambda: pc.connectionState in ("connected", "failed"), CONNECT_TIMEOUT)
            if not connected or pc.connectionState != "connected":
                return "no-connection", ports, counts
            if target.live:
                await _wait(lambda: counts.get("video", 0) >= 3, FRAMES_TIMEOUT)
            return "connected", ports, counts
    finally:
        if location:
            with contextlib.suppress(httpx.HTTPError):
                async with target.client() as client:
                    await client.delete(location, headers=headers)
        for task in tasks:
            task.cancel()
        await pc.close()


async def _wait(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (bounded); whether it came true."""
    for _ in range(int(timeout / 0.1)):
        if condition():
            return True
        await asyncio.sleep(0.1)
    return bool(condition())


def _refused(name: str, status: int, detail: str) -> Finding:
    if status == 401:
        return token_refused(name)
    if status == 429:
        return Finding(name, FAIL, "Mã này đang xem ở quá nhiều nơi: đóng bớt trang điểm cầu rồi thử lại.",
                       "This token is watching in too many places: close a point page and try again.")
    if status == 409:
        return Finding(name, FAIL, "Hội nghị đã kết thúc.", "The conference has ended.")
    return Finding(name, FAIL, f"Máy chủ từ chối phiên xem ({status}): {detail}",
                   f"The server refused the viewing session ({status}): {detail}")


def _received(name: str, target: Target, counts: dict[str, int], via: tuple[str, str]) -> Finding:
    """A connected session, judged by what arrived (``via``: how, in both languages)."""
    if not target.live:
        return Finding(name, OK, f"Kết nối hình/tiếng thông ({via[0]}); hội trường chưa phát nên chưa có hình.",
                       f"The media connection works ({via[1]}); the hall is not live, so no picture yet.")
    frames = counts.get("video", 0)
    if frames == 0:
        return Finding(name, WARN, f"Kết nối thông ({via[0]}) nhưng chưa nhận được hình: đường truyền có thể quá yếu.",
                       f"Connected ({via[1]}) but no picture arrived: the link may be too weak.")
    return Finding(name, OK, f"Nhận được hình và tiếng {via[0]} ({frames} khung hình).",
                   f"Picture and sound arrive {via[1]} ({frames} frames).")


async def check_media(target: Target) -> list[Finding]:
    """WHEP straight to the server's port, then through its TURN relay (if it offers one)."""
    direct = RTCConfiguration(iceServers=[RTCIceServer(**s) for s in target.ice_servers if s["urls"].startswith("stun:")])
    outcome, ports, counts = await receive(target, direct)
    if isinstance(outcome, int):
        return [_refused("WHEP", outcome, ports)]
    findings = []
    if outcome == "connected":
        findings.append(_received("WHEP", target, counts, (f"đi thẳng từ {ports}", f"directly from {ports}")))
    else:
        findings.append(Finding(
            "WHEP", FAIL,
            f"Không kết nối được hình/tiếng thẳng tới máy chủ ({ports}): mạng ở đây (hoặc tường lửa của máy chủ) "
            "chặn cổng UDP này. Nhờ nhà mạng/quản trị mở cổng UDP đó, hoặc dùng TURN.",
            f"No media connection straight to the server ({ports}): this network (or the server's firewall) "
            "blocks that UDP port. Ask for it to be opened, or use TURN.",
        ))
    turn = [RTCIceServer(**s) for s in target.ice_servers if s["urls"].startswith(("turn:", "turns:"))]
    if not turn:
        findings.append(Finding("TURN", SKIP, "Máy chủ không có TURN để thử.", "The server offers no TURN to try."))
        return findings
    relayed = RTCConfiguration(iceServers=turn, iceTransportPolicy=RTCIceTransportPolicy.RELAY)
    outcome, ports, counts = await receive(target, relayed)
    if isinstance(outcome, int):
        findings.append(_refused("TURN", outcome, ports))
    elif outcome == "connected":
        findings.append(_received("TURN", target, counts, ("qua TURN", "relayed through TURN")))
        if findings[0].status == FAIL:  # the relay carries it: the point can watch, slower
            findings[0].status = WARN
    else:
        findings.append(Finding(
            "TURN", FAIL, f"Không đi vòng được qua TURN ({', '.join(s.urls for s in turn)}): cổng TURN cũng bị chặn.",
            f"Cannot relay through TURN ({', '.join(s.urls for s in turn)}): the TURN port is blocked too.",
        ))
    return findings
