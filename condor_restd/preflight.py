"""What the settings need from this host before serving: one check for the daemon and --check-config."""

from __future__ import annotations

import errno
import os
import socket
import ssl

from .errors import ConfigError
from .knobvalues import file_problem
from .settings import Settings


class _EncryptedKey(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _EncryptedKey  # a daemon has no terminal to ask for one on


def check_address(settings: Settings) -> None:
    """RESTD_ADDRESS resolves to an address of this host; ConfigError naming it if not.

    Binds a throw-away socket to the address (port 0) to find out: the daemon's own bind may
    still fail later, for its port only (in use: exit 1, and condor_master retries)."""
    try:
        found = socket.getaddrinfo(settings.address, 0, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError("RESTD_ADDRESS", settings.address, f"cannot be resolved: {exc}") from None
    problem: OSError | None = None
    for family, kind, proto, _, address in found:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.bind(address)
            return
        except OSError as exc:
            problem = exc
    if problem is not None and problem.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        raise ConfigError("RESTD_ADDRESS", settings.address,
                          f"is not an address of this host: {problem.strerror or problem}")


def log_problem(settings: Settings) -> str | None:
    """Why RESTD_LOG cannot be opened for appending, in the words of the error opening it would
    raise, or None (standard error, or a file that can be). Creates and changes nothing."""
    path = settings.log
    if not path:
        return None
    try:
        if os.path.exists(path):
            if os.path.isdir(path):
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            with open(path, "a", encoding="utf-8"):  # opening to append writes nothing
                pass
            return None
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
    except OSError as exc:
        return log_error(settings, exc)
    return None


def log_error(settings: Settings, exc: OSError) -> str:
    """The one sentence for a daemon log that cannot be opened."""
    return f"cannot open the daemon log RESTD_LOG = {settings.log!r}: {exc}"


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context for RESTD_SSL_CERTFILE and RESTD_SSL_KEYFILE (None: plain HTTP).

    Reads the files as this process's user; ConfigError names the knob and the file that fails."""
    certfile, keyfile = settings.ssl_certfile, settings.ssl_keyfile
    if not certfile and not keyfile:
        return None
    for knob, path in (("RESTD_SSL_CERTFILE", certfile), ("RESTD_SSL_KEYFILE", keyfile)):
        if not path:
            raise ConfigError(knob, path, "RESTD_SSL_CERTFILE and RESTD_SSL_KEYFILE go together")
        problem = file_problem(path)
        if problem:
            raise ConfigError(knob, path, problem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(certfile, keyfile, password=_no_passphrase)
    except _EncryptedKey:
        raise ConfigError("RESTD_SSL_KEYFILE", keyfile, "is encrypted, and the daemon cannot ask "
                          "for a passphrase; keep it unencrypted, readable by the daemon only") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise ConfigError("RESTD_SSL_CERTFILE", certfile, f"with RESTD_SSL_KEYFILE = {keyfile!r}: not "
                          f"a PEM certificate and its private key: {exc}") from None
    return context
