"""``diemcau check``: from a point's own network, what of the way to the server works and what is blocked.

Run before the day at the point itself with the point's join link. Each check builds on the one
before (no WebSocket test if the server does not answer), and each finding is said in plain words,
in Vietnamese and in English, with what to ask of whom: the web checks in ``server.preflight_web``,
the media checks in ``server.preflight_media``; here their order and the verdict.
"""

from __future__ import annotations

from server.preflight_media import check_ice_config, check_media
from server.preflight_web import (
    FAIL,
    OK,
    SKIP,
    WARN,
    Finding,
    Target,
    check_http,
    check_link,
    check_websocket,
)


async def run_checks(target: Target) -> list[Finding]:
    """Every check in order; a check whose ground failed is skipped with the reason."""
    findings = [await check_http(target)]
    if findings[-1].status == FAIL:
        return findings + [Finding("Link / WebSocket / WHEP", SKIP, "Bỏ qua: chưa vào được máy chủ.",
                                   "Skipped: the server cannot be reached.")]
    findings.append(await check_link(target))
    if findings[-1].status in (FAIL, SKIP):
        return findings
    findings.append(await check_websocket(target))
    findings.append(await check_ice_config(target))
    if findings[-1].status == FAIL:
        return findings
    return findings + await check_media(target)


MARKS = {OK: "✔", WARN: "!", FAIL: "✘", SKIP: "-"}


def render(findings: list[Finding]) -> str:
    """One block per check, the Vietnamese line first, then a verdict."""
    lines = []
    for f in findings:
        lines += [f"{MARKS[f.status]} {f.name}: {f.vi}", f"  {f.en}"]
    failed = [f.name for f in findings if f.status == FAIL]
    if failed:
        lines.append(f"KHÔNG ĐẠT · FAILED: {', '.join(failed)}")
    elif passed(findings):
        lines.append("ĐẠT: điểm cầu xem được hội nghị từ mạng này · PASSED: this point can watch from this network")
    else:
        lines.append("CHƯA KIỂM TRA HẾT: cần đường link của điểm cầu · NOT ALL CHECKED: the point's join link is needed")
    return "\n".join(lines) + "\n"


def passed(findings: list[Finding]) -> bool:
    """Nothing failed and a viewing session went through (straight or relayed)."""
    return all(f.status != FAIL for f in findings) and any(
        f.name in ("WHEP", "TURN") and f.status in (OK, WARN) for f in findings
    )
