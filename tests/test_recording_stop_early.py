"""Stopping a recording before its first segment: the empty recording is discarded, and the organiser
is told so (404 with the reason), not given a 500."""

from __future__ import annotations

import time

import httpx

from tests.support.background import BackgroundPublisher
from tests.support.server import ServerProcess


def test_stop_before_the_first_segment_is_a_404_with_the_reason(server: ServerProcess) -> None:
    conference = server.create_conference("Dừng sớm")
    organiser = server.token(conference, "organiser")
    publisher = BackgroundPublisher(server.url, conference, server.token(conference, "speaker")).start()
    try:
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {organiser}"}, timeout=30) as c:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # the moment the recording exists, before 2 s of media
                r = c.get(f"/api/v1/conferences/{conference}/recording")
                if r.status_code == 200:
                    break
                time.sleep(0.05)
            assert r.status_code == 200, r.text
            assert r.json()["segment_count"] == 0, "a segment was already written: the test came too late"
            r = c.post(f"/api/v1/conferences/{conference}/recording/stop")
            assert r.status_code == 404, r.text
            assert "discarded" in r.json()["detail"]
            assert c.get("/healthz").status_code == 200
    finally:
        publisher.stop()
