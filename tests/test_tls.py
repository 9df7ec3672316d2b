"""HTTPS: the daemon's listener with RESTD_SSL_CERTFILE/KEYFILE, reached by standard clients.

Each test makes a self-signed certificate with cryptography and serves the demo pool from a
real cheroot server on 127.0.0.1, port 0, in a thread.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from condor_restd.daemon import Daemon, Listener, tls_adapter
from condor_restd.demo import DemoPool
from condor_restd.errors import ConfigError
from condor_restd.settings import Settings
from condor_restd.web import make_app


def make_certificate(directory: Path, name: str = "restd", key: Any = None,
                     encrypt: bytes | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for localhost and 127.0.0.1, and its key, as PEM files."""
    key = key if key is not None else ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    certfile, keyfile = directory / f"{name}.crt", directory / f"{name}.key"
    certfile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(encrypt) if encrypt
                  else serialization.NoEncryption())
    keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          encryption))
    keyfile.chmod(0o600)
    return certfile, keyfile


def tls_settings(certfile: Path, keyfile: Path, **changes: Any) -> Settings:
    return Settings(address="127.0.0.1", port=0, threads=2, ssl_certfile=str(certfile),
                    ssl_keyfile=str(keyfile)).replace(**changes)


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    return make_certificate(tmp_path)


@pytest.fixture
def serving(certificate: tuple[Path, Path]) -> Iterator[tuple[str, Path]]:
    """https://127.0.0.1:<port>, and the certificate a client must trust."""
    settings = tls_settings(*certificate)
    app = make_app(settings, DemoPool())
    listener = Listener(settings, app)
    listener.start()
    try:
        host, port = listener.address
        yield f"https://{host}:{port}", certificate[0]
    finally:
        listener.stop(1).join(5)
        app.queries.close()


def test_requests_reaches_the_api_over_https(serving: tuple[str, Path]) -> None:
    url, certfile = serving
    r = requests.get(f"{url}/v1/jobs/DEFAULT/2/0/Owner", verify=str(certfile), timeout=10)
    assert r.status_code == 200
    assert r.json() == "condoruser"
    r = requests.get(f"{url}/v1/status", params={"query": "schedd"}, verify=str(certfile), timeout=10)
    assert {ad["name"] for ad in r.json()} == {"vm", "schedd2@vm"}


def test_http_client_with_an_ssl_context(serving: tuple[str, Path]) -> None:
    url, certfile = serving
    host, port = url.removeprefix("https://").split(":")
    context = ssl.create_default_context(cafile=str(certfile))
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        assert response.status == 200
        assert b'"ok"' in response.read()
        assert connection.sock.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        connection.close()


def test_a_client_that_does_not_trust_the_certificate_fails(serving: tuple[str, Path]) -> None:
    url, _ = serving
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{url}/healthz", timeout=10)  # the system CAs never signed it


def test_plain_http_on_the_https_port_gets_no_data(serving: tuple[str, Path]) -> None:
    url, _ = serving
    try:
        r = requests.get(url.replace("https://", "http://") + "/v1/jobs/DEFAULT", timeout=10)
    except requests.exceptions.ConnectionError:
        return  # cheroot may just drop the connection
    assert r.status_code == 400
    assert "condoruser" not in r.text


def test_clients_slow_to_shake_hands_hold_up_no_one(certificate: tuple[Path, Path]) -> None:
    """30 connections that say nothing, or half a ClientHello: the others are served at once,
    and RESTD_HEADER_TIMEOUT closes them (the handshake used to block the accepting thread)."""
    settings = tls_settings(*certificate, threads=2, header_timeout=2.0)
    app = make_app(settings, DemoPool())
    listener = Listener(settings, app)
    listener.start()
    silent: list[socket.socket] = []
    try:
        address = listener.address
        for n in range(30):
            sock = socket.create_connection(address, timeout=5)
            if n % 2:
                sock.sendall(b"\x16\x03\x01\x02\x00\x01")  # the start of a ClientHello
            silent.append(sock)
        context = ssl.create_default_context(cafile=str(certificate[0]))
        for _ in range(3):
            started = time.monotonic()
            connection = http.client.HTTPSConnection(*address, context=context, timeout=5)
            try:
                connection.request("GET", "/healthz")
                assert connection.getresponse().status == 200
            finally:
                connection.close()
            assert time.monotonic() - started < 1.0
        time.sleep(2.5)  # past the deadline: closed
        for sock in silent:
            sock.settimeout(2)
            try:
                assert sock.recv(100) == b""
            except ConnectionResetError:
                pass
    finally:
        for sock in silent:
            sock.close()
        listener.stop(1).join(5)
        app.queries.close()


def test_the_server_accepts_tls_1_2_and_later_only(certificate: tuple[Path, Path]) -> None:
    adapter = tls_adapter(tls_settings(*certificate))
    assert adapter is not None
    assert adapter.context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert tls_adapter(Settings()) is None  # no files: plain HTTP


# ------------------------------------------------------------------------------- bad files

def test_a_missing_file_is_a_config_error_naming_knob_and_path(tmp_path: Path,
                                                               certificate: tuple[Path, Path]) -> None:
    certfile, keyfile = certificate
    for settings, knob, path in ((tls_settings(tmp_path / "nope.crt", keyfile), "RESTD_SSL_CERTFILE",
                                  tmp_path / "nope.crt"),
                                 (tls_settings(certfile, tmp_path / "nope.key"), "RESTD_SSL_KEYFILE",
                                  tmp_path / "nope.key")):
        with pytest.raises(ConfigError) as info:
            tls_adapter(settings)
        assert info.value.knob == knob and info.value.value == str(path)
        assert str(path) in str(info.value) and "no such file" in str(info.value)
        with pytest.raises(ConfigError) as parsed:  # and at start-up, before anything listens
            Settings.from_config({"RESTD_SSL_CERTFILE": settings.ssl_certfile,
                                  "RESTD_SSL_KEYFILE": settings.ssl_keyfile})
        assert parsed.value.knob == knob


def test_a_directory_or_a_fifo_is_not_a_certificate(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (tmp_path, fifo):  # opening a FIFO would block the start-up forever
        with pytest.raises(ConfigError) as info:
            tls_adapter(tls_settings(path, certificate[1]))
        assert info.value.knob == "RESTD_SSL_CERTFILE" and "not a regular file" in info.value.reason


def test_files_that_are_not_a_certificate_and_its_key(tmp_path: Path, certificate: tuple[Path, Path]) -> None:
    certfile, keyfile = certificate
    _, other_key = make_certificate(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not PEM at all\n")
    for cert, key in ((garbage, keyfile), (certfile, garbage), (certfile, other_key), (keyfile, certfile)):
        with pytest.raises(ConfigError) as info:
            tls_adapter(tls_settings(cert, key))
        assert info.value.knob == "RESTD_SSL_CERTFILE"
        assert "RESTD_SSL_KEYFILE" in info.value.reason


def test_an_encrypted_key_is_refused_without_prompting(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path, "locked", encrypt=b"secret")
    with pytest.raises(ConfigError) as info:
        tls_adapter(tls_settings(certfile, keyfile))
    assert info.value.knob == "RESTD_SSL_KEYFILE" and "encrypted" in info.value.reason


def test_an_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        certfile, keyfile = make_certificate(tmp_path)
        keyfile.chmod(0o000)
        with pytest.raises(ConfigError) as info:
            tls_adapter(tls_settings(certfile, keyfile))
        assert info.value.knob == "RESTD_SSL_KEYFILE" and "cannot be read" in info.value.reason
        return
    # As root every file is readable: check as another user, the way the daemon runs after it
    # drops privileges, in a child process so that this one stays root. The certificate is
    # world-readable in a directory anyone may enter; the key is root's only (0600).
    directory = Path(tempfile.mkdtemp(prefix="restd-tls-"))
    directory.chmod(0o755)
    try:
        certfile, keyfile = make_certificate(directory)
        certfile.chmod(0o644)
        run_as_nobody(certfile, keyfile)
    finally:
        shutil.rmtree(directory)


def run_as_nobody(certfile: Path, keyfile: Path) -> None:
    script = f"""
import os, sys
from condor_restd.daemon import tls_adapter
from condor_restd.errors import ConfigError
from condor_restd.settings import Settings
os.setegid(65534); os.seteuid(65534)
settings = Settings(ssl_certfile={str(certfile)!r}, ssl_keyfile={str(keyfile)!r})
for check in (lambda: tls_adapter(settings),
              lambda: Settings.from_config({{"RESTD_SSL_CERTFILE": {str(certfile)!r},
                                             "RESTD_SSL_KEYFILE": {str(keyfile)!r}}})):
    try:
        check()
    except ConfigError as exc:
        print(exc)
    else:
        sys.exit("no ConfigError")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                            cwd=Path(__file__).resolve().parent.parent)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2
    for line in lines:
        assert line.startswith(f"RESTD_SSL_KEYFILE = {str(keyfile)!r}: cannot be read by uid 65534")


# --------------------------------------------------------------------- the daemon, and reloads

def served_certificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname="localhost") as tls:
        certificate = tls.getpeercert(binary_form=True)
    assert certificate
    return certificate


def wait_for(condition: Any, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_the_daemon_serves_https_and_reloads_a_renewed_certificate(tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    settings = tls_settings(certfile, keyfile)
    daemon = Daemon(settings, build_app=lambda s: make_app(s, DemoPool()), reload=lambda: settings)
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    with caplog.at_level("INFO", logger="condor_restd"):
        thread.start()
        wait_for(lambda: daemon.listener is not None and daemon.listener.alive(), "the listener")
        assert daemon.listener is not None
        port = daemon.listener.address[1]
        assert any(f"listening on https://127.0.0.1:{port}/v1" in m for m in caplog.messages)
        first = served_certificate(port)
        r = requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(certfile), timeout=10)
        assert r.status_code == 200

        # renewed in place, under the same names: a SIGHUP loads it, on the same socket
        renewed = x509.load_pem_x509_certificate(make_certificate(tmp_path, "renewed")[0].read_bytes())
        os.replace(tmp_path / "renewed.crt", certfile)
        os.replace(tmp_path / "renewed.key", keyfile)
        daemon.handle_signal(signal.SIGHUP)
        wait_for(lambda: served_certificate(port) != first, "the renewed certificate")
        assert served_certificate(port) == renewed.public_bytes(serialization.Encoding.DER)
        assert daemon.listener.address[1] == port

        # a broken file on reload keeps what is served, and says why
        keyfile.write_text("broken\n")
        daemon.handle_signal(signal.SIGHUP)
        wait_for(lambda: any("keeping the current configuration: RESTD_SSL_CERTFILE" in m
                             for m in caplog.messages), "the reload to be refused")
        assert requests.get(f"https://127.0.0.1:{port}/healthz", verify=str(certfile), timeout=10).ok
        daemon.handle_signal(signal.SIGTERM)
        thread.join(15)
    assert result == [0]


def test_the_daemon_refuses_to_start_with_a_bad_key(tmp_path: Path) -> None:
    from condor_restd.daemon import EXIT_CONFIG, Fatal

    certfile, _ = make_certificate(tmp_path)
    _, other_key = make_certificate(tmp_path, "other", key=rsa.generate_private_key(65537, 2048))
    daemon = Daemon(tls_settings(certfile, other_key), build_app=lambda s: make_app(s, DemoPool()),
                    reload=lambda: Settings())
    with pytest.raises(Fatal) as info:
        daemon.run()
    assert info.value.code == EXIT_CONFIG
    assert "RESTD_SSL_CERTFILE" in info.value.message and str(certfile) in info.value.message
    daemon.app.queries.close()


# -------------------------------------------------------------------- the real daemon process

def daemon_process(tmp_path: Path, config: dict[str, str]) -> tuple[subprocess.Popen[str], Path]:
    """`python -m condor_restd --demo --port 0` under a CONDOR_CONFIG of its own."""
    log = tmp_path / "RestdLog"
    config_file = tmp_path / "condor_config"
    config_file.write_text("".join(f"{k} = {v}\n" for k, v in
                                   {"RESTD_ADDRESS": "127.0.0.1", "RESTD_LOG": str(log), **config}.items()))
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith("_CONDOR_") and k not in ("CONDOR_CONFIG", "CONDOR_INHERIT")}
    environ["CONDOR_CONFIG"] = str(config_file)
    proc = subprocess.Popen([sys.executable, "-m", "condor_restd", "--demo", "--port", "0"], env=environ,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, cwd=Path(__file__).resolve().parent.parent)
    return proc, log


@pytest.mark.slow
def test_the_daemon_process_serves_https(tmp_path: Path) -> None:
    certfile, keyfile = make_certificate(tmp_path)
    proc, log = daemon_process(tmp_path, {"RESTD_SSL_CERTFILE": str(certfile),
                                          "RESTD_SSL_KEYFILE": str(keyfile)})
    try:
        port = 0

        def listening() -> bool:
            nonlocal port
            text = log.read_text() if log.exists() else ""
            found = re.search(r"listening on https://127\.0\.0\.1:(\d+)/v1", text)
            assert proc.poll() is None, f"exited {proc.returncode}: {text}"
            port = int(found.group(1)) if found else 0
            return bool(found)

        wait_for(listening, "the daemon to listen", timeout=30)
        r = requests.get(f"https://127.0.0.1:{port}/v1/jobs/DEFAULT/2/0/Owner", verify=str(certfile),
                         timeout=10)
        assert (r.status_code, r.json()) == (200, "condoruser")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stderr.close()  # type: ignore[union-attr]


@pytest.mark.slow
def test_the_daemon_process_exits_99_on_a_missing_certificate(tmp_path: Path) -> None:
    _, keyfile = make_certificate(tmp_path)
    missing = tmp_path / "missing.crt"
    proc, _ = daemon_process(tmp_path, {"RESTD_SSL_CERTFILE": str(missing), "RESTD_SSL_KEYFILE": str(keyfile)})
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 99
    assert f"RESTD_SSL_CERTFILE = '{missing}': no such file" in stderr
