"""Runtime configuration: environment variables (DIEMCAU_*) over an optional TOML file.

The TOML file is ``$DIEMCAU_CONFIG`` or ``config/diemcau.toml`` when present; every key has a
safe embedded default so ``make run`` needs no file and no external service.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from media.transport.port_range import PortRange
from server.secret_files import write_secret_file

DEFAULT_CONFIG_FILE = Path("config/diemcau.toml")
# Members keep theirs longest: they may make up a session by replay weeks later.
DEFAULT_TOKEN_LIFETIME_DAYS = {
    "organiser": 30.0, "speaker": 14.0, "point": 14.0, "viewer": 14.0, "member": 60.0, "grader": 60.0,
    "supervisor": 14.0,
}


def default_worker_count() -> int:
    """Media processes when ``workers`` is 0: the ingest (API, speaker, recorder) plus one forwarding
    worker per core, so forwarding has every core and the ingest's loop stays free for the speaker."""
    return (os.cpu_count() or 1) + 1


class IceServer(BaseSettings):
    """One STUN/TURN server advertised to peers (WHIP/WHEP ``Link`` headers) and used by aiortc."""

    urls: str
    username: str | None = None
    credential: str | None = None


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIEMCAU_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = Field(
        default=None,
        description="Base URL used in join, HLS and signed links and WHIP/WHEP Location headers; unset = "
        "the scheme and Host of each request (behind a proxy in forwarded_allow_ips: its X-Forwarded-Proto)",
    )
    tls_cert_file: Path | None = Field(
        default=None, description="PEM certificate chain: the server itself speaks HTTPS (with tls_key_file)"
    )
    tls_key_file: Path | None = Field(default=None, description="PEM private key of tls_cert_file")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Comma-separated addresses or networks of reverse proxies whose X-Forwarded-Proto and "
        "X-Forwarded-For are believed (uvicorn's --forwarded-allow-ips); '*' trusts any client",
    )
    access_log: bool = Field(
        default=True,
        description="Log every HTTP request (tokens redacted). Behind the nginx front its own access log has "
        "them: false spares the server's CPU and the journal a line per viewer per playlist reload",
    )
    data_dir: Path = Path("data")
    admin_token: str | None = None
    database_url: str | None = Field(
        default=None, description="SQLAlchemy async URL; default SQLite under data_dir"
    )
    redis_url: str | None = Field(
        default=None, description="Redis URL for the event bus in cluster mode; unset = in-process"
    )
    ice_servers: list[IceServer] = Field(default_factory=list)
    turn_secret: str | None = Field(
        default=None,
        description="coturn's static-auth-secret (use-auth-secret): TURN entries of ice_servers without a "
        "username then get short-lived credentials (TURN REST API) per request instead of a fixed password",
    )
    turn_credential_ttl: int = Field(
        default=12 * 3600,
        ge=60,
        description="Seconds a TURN credential issued with turn_secret stays valid (coturn checks it on "
        "every allocation and refresh, so it must outlast the longest session)",
    )
    token_lifetime_days: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TOKEN_LIFETIME_DAYS),
        description="Default lifetime of a token per role, in days from its creation, for tokens issued "
        "without their own expiry; 0 = no expiry. Roles left out keep their default",
    )
    token_check_seconds: float = Field(
        default=2.0,
        gt=0.0,
        le=60.0,
        description="How often open WHIP/WHEP sessions and WebSockets are checked against revoked or "
        "expired tokens (they are closed at the next check)",
    )
    ice_host_addresses: list[str] = Field(
        default_factory=list,
        description="Restrict ICE host candidates to these addresses (e.g. 127.0.0.1); empty = all",
    )
    ice_udp_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Every peer of a media process on one UDP port: the ingest on this one, media worker i "
        "on this + i (open ICE_UDP_PORT to ICE_UDP_PORT + workers - 1); 0 = a port per peer",
    )
    ice_port_range: str = Field(
        default="",
        description="'first-last' (e.g. 40000-40199): every ICE host port inside it, a peer per port and host "
        "address, shared by all media processes; WHIP/WHEP answer 503 when none is free. Not with ice_udp_port",
    )
    ice_public_addresses: list[str] = Field(
        default_factory=list,
        description="Addresses advertised as host candidates too (a 1:1 NAT's public address), on the port "
        "of the local socket of the same IP version",
    )
    workers: int = Field(
        default=0,
        description="Media processes, the ingest included; 0 = the ingest plus one forwarding worker per core",
    )
    max_sdp_bytes: int = 64 * 1024
    max_upload_bytes: int = 50 * 1024 * 1024
    max_body_bytes: int = Field(
        default=1024 * 1024,
        ge=1024,
        description="Largest request body outside uploads (materials, CSV imports: max_upload_bytes); "
        "a larger one is refused with 413 before it is read or parsed",
    )
    max_whep_per_token: int = Field(
        default=2, ge=0, description="WHEP sessions one token may hold at once (429 beyond); 0 = no cap"
    )
    max_whep_per_conference: int = Field(
        default=1000, ge=0, description="WHEP sessions of one conference on this server (429 beyond); 0 = no cap"
    )
    max_websockets_per_token: int = Field(
        default=4, ge=0, description="Event WebSockets one token may hold open at once (429 beyond); 0 = no cap"
    )
    ws_max_message_bytes: int = Field(
        default=16 * 1024, ge=256, description="Largest WebSocket message a client may send (close 1009 beyond)"
    )
    ws_messages_per_second: float = Field(
        default=2.0, ge=0.0, description="Messages per second a WebSocket client may send on average "
        "(close 1008 beyond); 0 = no rate limit"
    )
    ws_message_burst: int = Field(
        default=20, ge=1, description="Messages a WebSocket client may send at once above that average"
    )
    keyframe_request_interval: float = Field(
        default=1.0,
        ge=0.0,
        description="At most one keyframe request per this many seconds reaches the speaker (joins are merged)",
    )
    fast_start_seconds: float = Field(
        default=1.0,
        ge=0.0,
        description="A point joining within this many seconds of the last keyframe starts from it at once "
        "(the GOP is replayed to that point only, at twice real time); 0 = always wait for a new keyframe",
    )
    rendition_adaptation: bool = Field(
        default=True,
        description="Move each point's video between the full rendition, the low one and none (audio "
        "only) by what its link carries (receiver reports); off: every point stays where it is pinned, "
        "full by default (the fan-out benchmark turns it off)",
    )
    max_handshakes: int = Field(
        default=64,
        ge=0,
        description="ICE/DTLS handshakes each media process runs at once; further WHEP requests wait (at "
        "most 10 s) for a slot before they are answered, which bounds the work an oversized join storm "
        "starts at once; 0 = no bound",
    )
    send_batches: Literal["gso", "sendmmsg", "sendto"] = Field(
        default="gso",
        description="How the relay sends a burst of packets to each point: a UDP GSO message per run of "
        "equal-sized packets, a point's runs in one sendmmsg call (falls back to plain sendmmsg where the "
        "kernel refuses GSO), or one sendto per packet",
    )
    rtp_pad_max: int = Field(
        default=8,
        ge=0,
        le=64,
        description="Bytes of RTP padding the relay may add to even out a burst's nearly equal packets, so "
        "they leave in one GSO send per point instead of one per size (packetizers split a frame one byte "
        "apart); receivers drop padding; 0 = off",
    )
    consumer_timeout: float = Field(
        default=30.0,
        description="Drop a subscriber after this many seconds without RTCP from it while media flows "
        "(RFC 7675's consent timeout; shorter drops healthy points whose reports a busy loop delayed)",
    )
    ingest_share: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Subscribers the ingest process takes, as a share of one media worker's (it also "
        "receives the speaker, serves the API and records); 0, the default, puts every subscriber on the "
        "workers while any is up, so the speaker's packets and keyframes never wait behind a join storm",
    )
    late_grace_minutes: int = 10
    replay_makeup_percent: float = Field(
        default=80.0,
        gt=0.0,
        le=100.0,
        description="A member who missed the conference made it up by replay once the recording segments "
        "the server sent them cover this share (percent) of the conference's recordings",
    )
    hls_segment_seconds: float = 2.0
    hls_segment_link_seconds: float = Field(
        default=20.0,
        ge=4.0,
        le=300.0,
        description="How long the segment URIs in a live playlist stay valid. They are signed for the "
        "conference, the same for every viewer, so a caching front (the nginx config) asks the server about a "
        "segment once, not once per viewer; a viewer whose token is revoked gets no new playlist after "
        "token_check_seconds, but may fetch live segments this long",
    )
    hls_low_variant: bool = Field(
        default=True,
        description="Live HLS and recordings get a second variant, the low rendition (640x360), beside the "
        "full one in a multivariant playlist (players switch by bandwidth); the low rendition is made "
        "while the recording lasts (by the server's transcoder, unless the publisher sends its own). Off: "
        "one variant, and no transcoder for HLS",
    )
    recording_idle_seconds: float = Field(
        default=120.0,
        description="Close the recording when no speaker has been live for this long (a short drop continues it)",
    )
    recording_audio_channels: int = Field(
        default=1,
        ge=1,
        le=2,
        description="AAC channels of recordings and live HLS: 1 (speech from a hall microphone; the "
        "AAC encode costs half) or 2",
    )
    recording_audio_bitrate: int = Field(
        default=64_000, ge=24_000, le=320_000, description="AAC bitrate of recordings and live HLS, bit/s"
    )
    retention_days: int | None = Field(
        default=180,
        ge=0,
        description="Delete finished recordings older than this many days (at start-up and hourly); a "
        "large value keeps them for good",
    )
    retention_max_bytes: int | None = Field(
        default=None, ge=0, description="Also delete the oldest finished recordings while all of them "
        "together take more than this; unset = no size budget"
    )
    recording_min_free_bytes: int = Field(
        default=2_000_000_000,
        ge=0,
        description="Free disk space under data_dir/recordings below which no recording starts and a running "
        "one pauses (it resumes at a keyframe once there is room), so the attendance database can still "
        "write; shown on the dashboard and in /metrics; 0 = no floor",
    )
    floor_warning_seconds: float = Field(
        default=30.0,
        ge=0.0,
        le=3600.0,
        description="A floor.warning event goes out this many seconds before a time limit the chair set "
        "ends the floor (at once when the limit is shorter)",
    )
    floor_link_grace_seconds: float = Field(
        default=10.0,
        ge=0.0,
        le=600.0,
        description="A point holding the floor whose WHIP session closed (link lost) keeps the floor this "
        "long; if it publishes again meanwhile it goes on, else the floor ends (reason link_lost)",
    )
    quality_sample_seconds: float = Field(
        default=5.0,
        ge=1.0,
        le=60.0,
        description="Each point's link quality is sampled this often (its score, history, quality.changed "
        "events and the report's minutes); the point pages report their playback every 5 s",
    )
    quality_poor_alert_seconds: float = Field(
        default=60.0,
        ge=0.0,
        le=3600.0,
        description="A point whose quality has been poor this long raises a quality alert for the organisers",
    )
    webhook_urls: list[str] = Field(
        default_factory=list,
        description="URLs (http or https) that receive every webhook event as a signed JSON POST; empty = no webhooks",
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Key of the HMAC-SHA256 signature in X-Diemcau-Signature; unset = generated once and "
        "kept in data_dir/webhook_secret (give that to the receivers)",
    )
    webhook_timeout_seconds: float = Field(
        default=5.0, gt=0.0, le=60.0, description="A delivery attempt not answered within this long has failed"
    )
    webhook_max_attempts: int = Field(
        default=8, ge=1, le=50, description="Attempts per delivery (the first and its retries) before it is given up"
    )
    webhook_retry_seconds: float = Field(
        default=2.0, gt=0.0, le=3600.0,
        description="Wait before the first retry; each further retry waits twice as long as the one before",
    )
    webhook_retry_max_seconds: float = Field(
        default=600.0, gt=0.0, le=86400.0, description="Longest wait between two attempts"
    )
    webhook_log_days: float = Field(
        default=30.0, gt=0.0, description="Delivery log entries older than this many days are deleted"
    )
    essay_max_upload_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest essay file (PDF, DOCX, ODT) a member uploads (413 beyond)"
    )
    snapshot_interval_seconds: float = Field(
        default=30.0, ge=1.0, le=3600.0,
        description="How often a point page that consented sends a room snapshot (remote supervision)",
    )
    snapshot_max_bytes: int = Field(
        default=64 * 1024, ge=1024, le=1024 * 1024, description="Largest room snapshot JPEG accepted (413 beyond)"
    )
    snapshot_retention_seconds: float = Field(
        default=30 * 86400.0, gt=0.0,
        description="Room snapshots older than this are deleted (checked at start-up and then regularly)",
    )

    @field_validator("webhook_urls")
    @classmethod
    def _webhook_urls(cls, value: list[str]) -> list[str]:
        from urllib.parse import urlsplit

        for url in value:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook URL {url!r} is not an http(s) URL with a host")
        return value

    @field_validator("ice_port_range")
    @classmethod
    def _ice_port_range(cls, value: str) -> str:
        if value:
            PortRange.parse(value)  # ValueError says how it is written
        return value

    @field_validator("ice_public_addresses")
    @classmethod
    def _ice_public_addresses(cls, value: list[str]) -> list[str]:
        import ipaddress

        return [str(ipaddress.ip_address(address)) for address in value]

    @model_validator(mode="after")
    def _one_way_to_ports(self) -> Settings:
        if self.ice_udp_port and self.ice_port_range:
            raise ValueError("ice_udp_port and ice_port_range exclude each other: set one")
        if self.ice_udp_port and self.ice_udp_port + self.worker_count - 1 > 65535:
            raise ValueError(f"ice_udp_port {self.ice_udp_port} + {self.worker_count - 1} media workers passes 65535")
        return self

    @field_validator("token_lifetime_days")
    @classmethod
    def _lifetimes_per_role(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(DEFAULT_TOKEN_LIFETIME_DAYS)
        if unknown:
            raise ValueError(f"unknown role(s) {sorted(unknown)}; roles: {sorted(DEFAULT_TOKEN_LIFETIME_DAYS)}")
        if any(days < 0 for days in value.values()):
            raise ValueError("a token lifetime may not be negative (0 = no expiry)")
        return {**DEFAULT_TOKEN_LIFETIME_DAYS, **value}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        config_file = Path(os.environ.get("DIEMCAU_CONFIG", DEFAULT_CONFIG_FILE))
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if config_file.is_file():
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together: set both or neither")
        for path in (self.tls_cert_file, self.tls_key_file):
            if path is not None and not path.is_file():
                raise ValueError(f"TLS file {path} does not exist")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert_file is not None

    @property
    def base_url(self) -> str:
        """The configured public URL, else where this server itself listens (printed at start-up)."""
        scheme = "https" if self.tls else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{(self.data_dir / 'diemcau.db').resolve()}"

    @property
    def worker_count(self) -> int:
        return self.workers if self.workers > 0 else default_worker_count()

    def ensure_admin_token(self) -> str:
        """Return the admin token, generating and persisting one in the data dir when unset."""
        if self.admin_token:
            return self.admin_token
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path = self.data_dir / "admin_token"
        if path.is_file() and path.read_text().strip():
            self.admin_token = path.read_text().strip()
        else:
            self.admin_token = secrets.token_urlsafe(32)
            write_secret_file(path, (self.admin_token + "\n").encode())
        return self.admin_token


@lru_cache
def get_settings() -> Settings:
    return Settings()
