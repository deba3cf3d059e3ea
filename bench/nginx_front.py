"""nginx in front of a server as deployed: ``config/nginx/diemcau.conf`` as shipped, only its name, ports
and paths replaced, run by Debian's nginx as a process of its own (prefix, logs, cache and temp files
in one directory, HTTPS on a free loopback port, a self-signed certificate made here). For the tests
(tests/test_https_proxy.py) and the benchmarks that measure the cache."""

from __future__ import annotations

import datetime as dt
import getpass
import ipaddress
import shutil
import subprocess
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.server_process import ROOT, free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SHIPPED = ROOT / "config" / "nginx" / "diemcau.conf"
PUBLIC_NAME = "hoinghi.test"  # the public name clients use; map it to 127.0.0.1 (Host header, resolver rules)
# The main configuration docs/deploy.md asks for (Debian's 768 connections a worker hold ~700 viewers):
# each viewer keeps a connection, each request proxied to the server one more.
CONNECTIONS, NOFILE = 8192, 16384
TEMP_PATHS = {"client_body": "body", "proxy": "proxy", "fastcgi": "fastcgi", "uwsgi": "uwsgi", "scgi": "scgi"}


def self_signed(directory: Path, name: str = PUBLIC_NAME) -> tuple[Path, Path]:
    """A certificate (and its key) for ``name`` and 127.0.0.1, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "fullchain.pem", directory / "privkey.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def render(shipped: str, replacements: dict[str, str]) -> str:
    """The shipped configuration with its names, ports and paths replaced; each must still be there."""
    for old, new in replacements.items():
        if old not in shipped:
            raise ValueError(f"{old!r} is no longer in {SHIPPED.name}: update bench/nginx_front.py")
        shipped = shipped.replace(old, new)
    return shipped


class NginxFront:
    """``with NginxFront(home, backend_port) as front:`` -> HTTPS at ``front.url`` (the public name) and
    ``front.local_url`` (127.0.0.1), proxying to the server on ``backend_port``; stopped for sure."""

    def __init__(self, home: Path, backend_port: int) -> None:
        self.home = home
        self.backend_port = backend_port
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://{PUBLIC_NAME}:{self.port}"

    @property
    def local_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def client(self, **headers: str) -> httpx.Client:
        """Through nginx as a client of the public name would come (its Host), the certificate accepted."""
        return httpx.Client(base_url=self.local_url, verify=False, timeout=20,
                            headers={"Host": f"{PUBLIC_NAME}:{self.port}", **headers})

    def access_log(self) -> str:
        path = self.home / "access.log"
        return path.read_text() if path.exists() else ""

    def _write_config(self) -> Path:
        for directory in (*TEMP_PATHS.values(), "cache", "cache-auth"):  # the HLS cache, its answers from /hls-auth
            (self.home / directory).mkdir(parents=True, exist_ok=True)
        cert, key = self_signed(self.home)
        site = render(SHIPPED.read_text(), {
            "server 127.0.0.1:8080;": f"server 127.0.0.1:{self.backend_port};",
            "/var/cache/nginx/diemcau": str(self.home / "cache"),
            "listen 80;": f"listen 127.0.0.1:{free_port()};",
            "listen [::]:80;": "",
            "listen 443 ssl http2;": f"listen 127.0.0.1:{self.port} ssl http2;",
            "listen [::]:443 ssl http2;": "",
            "/etc/letsencrypt/live/hoinghi.example.vn/fullchain.pem": str(cert),
            "/etc/letsencrypt/live/hoinghi.example.vn/privkey.pem": str(key),
            "hoinghi.example.vn": PUBLIC_NAME,
            "/var/log/nginx/diemcau.access.log": str(self.home / "access.log"),
        })
        (self.home / "diemcau.conf").write_text(site)
        # Debian's built-in paths (/var/lib/nginx, /run) belong to the system's nginx: these stay here.
        temps = "\n".join(f"    {kind}_temp_path {self.home / d};" for kind, d in TEMP_PATHS.items())
        conf = self.home / "nginx.conf"
        conf.write_text(
            f"user {getpass.getuser()};\nworker_processes auto;\nworker_rlimit_nofile {NOFILE};\n"
            f"pid {self.home / 'nginx.pid'};\nerror_log {self.home / 'error.log'} warn;\n"
            f"events {{ worker_connections {CONNECTIONS}; }}\n"
            f"http {{\n{temps}\n    include {self.home / 'diemcau.conf'};\n}}\n"
        )
        return conf

    def start(self, timeout: float = 15.0) -> NginxFront:
        if not Path(NGINX).exists():
            raise FileNotFoundError("nginx is missing: apt-get install -y nginx (make test installs it)")
        conf = self._write_config()
        self.proc = subprocess.Popen([NGINX, "-p", str(self.home), "-c", str(conf), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=open(self.home / "stderr.log", "wb"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited:\n{self.log()}")
            try:
                if httpx.get(f"{self.local_url}/healthz", verify=False, timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"nginx did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return "".join((self.home / f).read_text()[-3000:] for f in ("stderr.log", "error.log")
                       if (self.home / f).exists())

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def __enter__(self) -> NginxFront:
        return self if self.proc else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
