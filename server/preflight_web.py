"""The web half of ``diemcau check``: the server answers over HTTPS, the link's token is valid, the
event WebSocket opens through every proxy on the way. Also what every check shares: the target (the
server, the conference and token from a join link) and a finding said in Vietnamese and English.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus, WebSocketException

HTTP_TIMEOUT = 8.0
WS_TIMEOUT = 8.0

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"


@dataclass
class Finding:
    """One check's outcome: ``status`` is ok, warn, fail or skip; ``vi`` and ``en`` say it plainly."""

    name: str
    status: str
    vi: str
    en: str


@dataclass
class Target:
    """The server, and the conference and token the checks use (from a join link or given apart)."""

    base_url: str
    conference: str | None = None
    token: str | None = None
    ice_servers: list[dict[str, str | None]] = field(default_factory=list)
    live: bool = False
    ca_file: Path | None = None  # a certificate authority to trust besides the system's (an internal CA)
    _tls: ssl.SSLContext | None = field(default=None, repr=False)

    def tls(self) -> ssl.SSLContext:
        """This machine's trusted authorities (as its browser), and ``ca_file``'s; made once."""
        if self._tls is None:
            self._tls = ssl.create_default_context()
            if self.ca_file is not None:
                self._tls.load_verify_locations(self.ca_file)
        return self._tls

    def client(self, timeout: float = HTTP_TIMEOUT) -> httpx.AsyncClient:
        """An HTTP client as a browser at the point: no proxy settings of this machine's user."""
        return httpx.AsyncClient(timeout=timeout, trust_env=False, verify=self.tls())

    @property
    def host(self) -> str:
        return urlsplit(self.base_url).netloc

    @property
    def secure(self) -> bool:
        return self.base_url.startswith("https://")


def parse_target(url: str, conference: str | None = None, token: str | None = None,
                 ca_file: Path | None = None) -> Target:
    """``https://host/point.html#conference=…&token=…`` (a join link) or ``https://host``: the base URL,
    and the conference and token from the link unless given."""
    if "://" not in url:
        url = "https://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{url}' is not an http:// or https:// address")
    fragment = {k: v[0] for k, v in parse_qs(parts.fragment).items()}
    return Target(
        f"{parts.scheme}://{parts.netloc}",
        conference or fragment.get("conference"),
        token or fragment.get("token"),
        ca_file=ca_file,
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and those behind it (httpx wraps the socket's own error twice)."""
    out: list[BaseException] = []
    while exc is not None and len(out) < 10:
        out.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
    return out


def _reason(exc: BaseException) -> tuple[str, str]:
    """What a connection failure means for a person, in Vietnamese and English."""
    chain = _chain(exc)
    text = str(chain[-1]) or type(chain[-1]).__name__
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return ("chứng chỉ HTTPS của máy chủ không hợp lệ (hết hạn, sai tên miền hoặc tự ký)",
                f"the server's HTTPS certificate is not accepted (expired, wrong name or self-signed): {text}")
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return ("bị từ chối: máy chủ chưa chạy hoặc cổng này bị đóng",
                "connection refused: the server is not running, or this port is closed")
    if any(isinstance(e, socket.gaierror) for e in chain):
        return ("không tìm thấy tên máy chủ (DNS)", f"the server's name cannot be resolved (DNS): {text}")
    if any(isinstance(e, httpx.TimeoutException | TimeoutError) for e in chain):
        return ("không có trả lời: tường lửa đang chặn (bỏ rơi gói tin) hoặc đường truyền quá chậm",
                "no answer: a firewall is dropping the traffic, or the link is far too slow")
    return ("lỗi kết nối", f"connection error: {text}")


async def check_http(target: Target) -> Finding:
    """The server's own page answers (``/healthz``) over the link's scheme."""
    scheme = "HTTPS" if target.secure else "HTTP"
    try:
        async with target.client() as client:
            r = await client.get(f"{target.base_url}/healthz")
    except httpx.HTTPError as exc:
        vi, en = _reason(exc)
        return Finding(scheme, FAIL, f"Không vào được máy chủ {target.host}: {vi}.",
                       f"Cannot reach the server at {target.host}: {en}.")
    if r.status_code != 200:
        return Finding(scheme, FAIL, f"Máy chủ {target.host} trả lời lỗi {r.status_code} (hỏi quản trị máy chủ).",
                       f"The server at {target.host} answered {r.status_code} (ask its administrator).")
    if not target.secure:
        return Finding(scheme, WARN, f"Máy chủ trả lời qua HTTP (không mã hoá). Trình duyệt chỉ cho dùng camera qua HTTPS.",
                       "The server answers over plain HTTP. Browsers allow the camera only over HTTPS.")
    return Finding(scheme, OK, f"Máy chủ {target.host} trả lời qua HTTPS.", f"The server at {target.host} answers over HTTPS.")


async def check_link(target: Target) -> Finding:
    """The link's conference and token, as the page's first request checks them."""
    if not target.conference or not target.token:
        return Finding("Link", SKIP, "Cần đường link của điểm cầu (có mã) để kiểm tra tiếp.",
                       "The point's join link (with its token) is needed for the next checks.")
    try:
        async with target.client() as client:
            r = await client.get(f"{target.base_url}/api/v1/conferences/{target.conference}",
                                 headers={"Authorization": f"Bearer {target.token}"})
    except httpx.HTTPError as exc:
        vi, en = _reason(exc)
        return Finding("Link", FAIL, f"Không hỏi được máy chủ: {vi}.", f"Cannot ask the server: {en}.")
    if r.status_code == 401:
        return token_refused("Link")
    if r.status_code in (403, 404):
        return Finding("Link", FAIL, "Đường link không thuộc hội nghị này: xin Ban Tổ chức đường link đúng.",
                       "The link does not belong to this conference: ask the organisers for the right link.")
    if r.status_code != 200:
        return Finding("Link", FAIL, f"Máy chủ trả lời lỗi {r.status_code}.", f"The server answered {r.status_code}.")
    title = r.json().get("title", "")
    return Finding("Link", OK, f"Đường link hợp lệ: hội nghị «{title}».", f"The link is valid: conference “{title}”.")


async def check_websocket(target: Target) -> Finding:
    """The page's event channel: an upgrade through every proxy and firewall on the way, and the
    server's first message (which also says whether the hall is live)."""
    ws_url = target.base_url.replace("http", "ws", 1) + f"/ws/conferences/{target.conference}"
    try:
        async with asyncio.timeout(WS_TIMEOUT):
            tls = target.tls() if target.secure else None
            async with connect(f"{ws_url}?token={target.token}", open_timeout=WS_TIMEOUT, ssl=tls) as ws:
                first = json.loads(await ws.recv())
    except InvalidStatus as exc:
        code = exc.response.status_code
        return Finding("WebSocket", FAIL,
                       f"Kênh sự kiện (WebSocket) bị chặn: trả lời {code}. Proxy hoặc tường lửa không cho nâng cấp WebSocket.",
                       f"The event channel (WebSocket) is blocked: answered {code}. A proxy or firewall refuses the WebSocket upgrade.")
    except (OSError, TimeoutError, WebSocketException, ValueError) as exc:
        vi, en = _reason(exc)
        return Finding("WebSocket", FAIL, f"Kênh sự kiện (WebSocket) không mở được: {vi}.",
                       f"The event channel (WebSocket) does not open: {en}.")
    target.live = bool(first.get("live"))
    hall = ("Hội trường đang phát." if target.live else "Hội trường chưa phát."), \
           ("The hall is live." if target.live else "The hall is not live yet.")
    return Finding("WebSocket", OK, f"Kênh sự kiện (WebSocket) thông. {hall[0]}",
                   f"The event channel (WebSocket) works. {hall[1]}")


def token_refused(name: str) -> Finding:
    return Finding(name, FAIL,
                   "Mã của điểm cầu không đúng, đã hết hạn hoặc đã bị thu hồi: xin Ban Tổ chức đường link mới.",
                   "The point's token is wrong, expired or revoked: ask the organisers for a new link.")
