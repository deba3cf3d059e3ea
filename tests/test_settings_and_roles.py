"""Configuration sources, the generated admin token, ICE server advertisement, and the role matrix."""

from __future__ import annotations

import httpx
import pytest

from server.settings import Settings
from tests.support.http import http


def test_toml_file_then_environment(tmp_path, monkeypatch):
    config = tmp_path / "diemcau.toml"
    config.write_text(
        'port = 9000\nworkers = 3\n[[ice_servers]]\nurls = "turn:turn.example:3478"\nusername = "u"\ncredential = "c"\n'
    )
    monkeypatch.setenv("DIEMCAU_CONFIG", str(config))
    monkeypatch.setenv("DIEMCAU_PORT", "9100")
    settings = Settings()
    assert settings.port == 9100  # environment wins over the file
    assert settings.workers == 3
    assert settings.ice_servers[0].urls == "turn:turn.example:3478"
    monkeypatch.setenv("DIEMCAU_CONFIG", str(tmp_path / "missing.toml"))
    assert Settings().port == 9100 and Settings().workers == 0


def test_admin_token_generated_once_and_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("DIEMCAU_ADMIN_TOKEN", raising=False)
    monkeypatch.setenv("DIEMCAU_CONFIG", "/nonexistent")
    first = Settings(data_dir=tmp_path).ensure_admin_token()
    assert len(first) >= 32
    assert (tmp_path / "admin_token").read_text().strip() == first
    assert Settings(data_dir=tmp_path).ensure_admin_token() == first


@pytest.fixture(scope="module")
def ice_server(start_server):
    with start_server(
        "ice",
        workers=1,
        ice_servers='[{"urls": "stun:127.0.0.1:3478"}, '
        '{"urls": "turn:127.0.0.1:3478", "username": "u1", "credential": "p1"}]',
    ) as srv:
        yield srv


def test_ice_servers_advertised_in_link_headers(ice_server):
    conf = ice_server.create_conference()
    viewer = ice_server.token(conf, "viewer")
    r = httpx.options(f"{ice_server.url}/whep/{conf}", headers={"Authorization": f"Bearer {viewer}"})
    assert r.status_code == 204
    links = r.headers.get_list("link")
    assert '<stun:127.0.0.1:3478>; rel="ice-server"' in links
    assert any('turn:127.0.0.1:3478' in l and 'username="u1"' in l and 'credential="p1"' in l for l in links)


def test_ice_servers_only_for_callers_allowed_to_post(ice_server):
    """TURN credentials are secrets: no Link without a token; a bad token or the wrong role is refused."""
    conf = ice_server.create_conference()
    other = ice_server.create_conference()
    for kind in ("whep", "whip"):
        r = httpx.options(f"{ice_server.url}/{kind}/{conf}")
        assert r.status_code == 204 and r.headers["accept-post"] == "application/sdp"
        assert r.headers.get_list("link") == [], kind
        assert "p1" not in str(r.headers)
    as_ = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731
    assert httpx.options(f"{ice_server.url}/whep/{conf}", headers=as_("nonsense")).status_code == 401
    assert httpx.options(f"{ice_server.url}/whep/{conf}", headers=as_(ice_server.token(other, "viewer"))).status_code == 403
    r = httpx.options(f"{ice_server.url}/whip/{conf}", headers=as_(ice_server.token(conf, "viewer")))
    assert r.status_code == 403 and r.headers.get_list("link") == []
    r = httpx.options(f"{ice_server.url}/whip/{conf}", headers=as_(ice_server.token(conf, "speaker")))
    assert r.status_code == 204 and any('credential="p1"' in l for l in r.headers.get_list("link"))


def test_role_matrix(server):
    conf = server.create_conference()
    tokens = {role: server.token(conf, role) for role in ("organiser", "speaker", "point", "viewer", "member")}

    def call(method: str, path: str, token: str, **kw) -> int:
        return http.request(
            method, f"{server.url}{path}", headers={"Authorization": f"Bearer {token}"}, timeout=10, **kw
        ).status_code

    # only the admin creates conferences
    for role, token in tokens.items():
        assert call("POST", "/api/v1/conferences", token, json={"title": "x"}) == 403, role
    # only admin and organiser issue tokens, and only the admin issues organiser tokens
    for role in ("speaker", "point", "viewer", "member"):
        assert call("POST", f"/api/v1/conferences/{conf}/tokens", tokens[role], json={"role": "point"}) == 403
    assert call("POST", f"/api/v1/conferences/{conf}/tokens", tokens["organiser"], json={"role": "point"}) == 201
    assert call("POST", f"/api/v1/conferences/{conf}/tokens", tokens["organiser"], json={"role": "organiser"}) == 403
    # only the speaker publishes (a bad body, so the role check is what is tested: 403 before 400)
    for role in ("organiser", "point", "viewer", "member"):
        r = httpx.post(
            f"{server.url}/whip/{conf}",
            content="v=0\r\n",
            headers={"Authorization": f"Bearer {tokens[role]}", "Content-Type": "application/sdp"},
        )
        assert r.status_code == 403, role
    r = httpx.post(
        f"{server.url}/whip/{conf}",
        content="v=0\r\n",
        headers={"Authorization": f"Bearer {tokens['speaker']}", "Content-Type": "application/sdp"},
    )
    assert r.status_code == 400  # allowed in, then the body is rejected
    # tokens are unguessable and distinct
    assert len(set(tokens.values())) == 5 and all(len(t) >= 32 for t in tokens.values())
    # media stats are admin-only
    assert call("GET", "/api/v1/media/stats", tokens["organiser"]) == 403
