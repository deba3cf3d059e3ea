"""A conference for the media tests: its points imported from a CSV, their join links issued, a
speaker publishing a clip in the background (when given one), and the organiser's view of each
point's quality."""

from __future__ import annotations

import httpx

from bench.clip import Clip
from bench.server_process import ServerProcess
from tests.support.background import BackgroundPublisher


class LiveConference:
    def __init__(self, server: ServerProcess, title: str, points_csv: str, clip: Clip | None = None) -> None:
        self.server = server
        self.id = server.create_conference(title=title)
        self.organiser = server.token(self.id, "organiser")
        with self.client() as c:
            r = c.post(f"/api/v1/conferences/{self.id}/points/import", content=points_csv.encode(),
                       headers={"content-type": "text/csv"})
            assert r.status_code == 200, r.text
            self.links = {x["name"]: x for x in c.post(f"/api/v1/conferences/{self.id}/points/tokens").json()}
        self.publisher = (BackgroundPublisher(server.url, self.id, server.token(self.id, "speaker"), clip).start()
                          if clip is not None else None)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.server.url, headers={"Authorization": f"Bearer {self.organiser}"}, timeout=20)

    def quality(self) -> dict:
        with self.client() as c:
            r = c.get(f"/api/v1/conferences/{self.id}/quality")
        assert r.status_code == 200, r.text
        return r.json()

    def row(self, name: str) -> dict:
        """The point's line of the quality view."""
        return next(p for p in self.quality()["points"] if p["name"] == name)
