"""Bearer tokens: who a request comes from, verified against the issuers RESTD_TOKEN_ISSUERS trusts.

A token is a JWT signed with an asymmetric key that its issuer publishes: the issuer's OpenID
discovery document names a JWKS, and the keys in it are fetched with requests, cached, and
fetched again when a token names a key id the cache does not hold (no more often than
MIN_REFRESH_SECONDS). PyJWT does the cryptography. Nothing here logs a token or any part of one.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Callable

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed448 import Ed448PublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from .errors import BadRequest, RestdError, Unavailable
from .errors import Forbidden as Forbidden
from .knobvalues import USER_NAME, UserMap
from .settings import Settings

log = logging.getLogger("condor_restd.auth")

REALM = "condor_restd"
# Asymmetric algorithms only: no "none", and no HS*, whose secret a client could take to be the
# issuer's public key. The key type each needs (and, for EC, the curve).
KEY_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "RS256": ("RSA", ()), "RS384": ("RSA", ()), "RS512": ("RSA", ()),
    "PS256": ("RSA", ()), "PS384": ("RSA", ()), "PS512": ("RSA", ()),
    "ES256": ("EC", ("P-256",)), "ES384": ("EC", ("P-384",)), "ES512": ("EC", ("P-521",)),
    "EdDSA": ("OKP", ("Ed25519", "Ed448")),
}
ALGORITHMS = tuple(KEY_TYPES)
PUBLIC_KEYS = (RSAPublicKey, EllipticCurvePublicKey, Ed25519PublicKey, Ed448PublicKey)
MIN_RSA_BITS = 2048
LEEWAY = 60  # seconds of clock difference allowed when checking exp and nbf
MAX_TOKEN_LENGTH = 16384
FETCH_TIMEOUT = (3.05, 5.0)  # seconds to connect, and between bytes, for each issuer document
MAX_DOCUMENT_BYTES = 1 << 20
KEY_CACHE_SECONDS = 3600.0  # how long fetched keys are used before they are fetched again
MIN_REFRESH_SECONDS = 30.0  # at most one fetch per issuer this often, whatever tokens arrive
LOCK_WAIT = 2.0  # seconds a request waits for another one's fetch of the same issuer's keys
DISCOVERY = "/.well-known/openid-configuration"
TOKEN_IN_URL = ("access_token",)  # RFC 6750's query parameter: refused, URLs end up in logs
TIME_CLAIMS = ("exp", "nbf", "iat")  # NumericDate claims (RFC 7519): JSON numbers, nothing else


class Unauthorized(RestdError):
    """401: no token, or one that cannot be accepted; says so in WWW-Authenticate (RFC 6750)."""

    status = 401

    def __init__(self, message: str, error: str | None = "invalid_token", **extra: Any) -> None:
        super().__init__(message, **extra)
        challenge = f'Bearer realm="{REALM}"'
        if error:  # the messages are ours, never text from the token: safe in a quoted-string
            challenge += f', error="{error}", error_description="{message}"'
        self.headers["WWW-Authenticate"] = challenge


class IssuerUnavailable(Unavailable):
    """503: the token's issuer does not hand out its keys, so no token of it can be checked now."""


@dataclass(frozen=True)
class Identity:
    """The HTCondor user (user@domain) a request comes from, and whether RESTD_ADMIN_USERS has them."""

    user: str
    admin: bool = False


def token_required() -> Unauthorized:
    return Unauthorized("this API needs a bearer token: send Authorization: Bearer <token>", error=None)


# --------------------------------------------------------------------------------- issuer keys

class FetchError(Exception):
    """An issuer's discovery document or JWKS could not be fetched or used."""


@dataclass
class _IssuerState:
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)  # kid -> JWK
    fetched: float | None = None  # when the keys were last fetched successfully
    attempted: float | None = None  # when a fetch was last tried
    failing: bool = False  # whether that try failed
    lock: threading.Lock = field(default_factory=threading.Lock)


class Issuers:
    """The signing keys of the trusted issuers, fetched on demand and cached."""

    def __init__(self, issuers: Iterable[str], session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 cache_seconds: float = KEY_CACHE_SECONDS, min_refresh: float = MIN_REFRESH_SECONDS,
                 timeout: tuple[float, float] = FETCH_TIMEOUT, lock_wait: float = LOCK_WAIT) -> None:
        self._states = {issuer: _IssuerState() for issuer in issuers}
        self.session = session if session is not None else requests.Session()
        self.clock = clock
        self.cache_seconds = cache_seconds
        self.min_refresh = min_refresh
        self.timeout = timeout
        self.lock_wait = lock_wait

    def jwk(self, issuer: str, kid: str) -> dict[str, Any]:
        """The JWK `issuer` publishes under `kid`; Unauthorized if it publishes none,
        IssuerUnavailable if its keys cannot be fetched."""
        state = self._states[issuer]
        keys, fetched = state.keys, state.fetched  # read without the lock: replaced, never changed
        if kid in keys and fetched is not None:
            if self.clock() - fetched < self.cache_seconds:
                return keys[kid]
            if not state.lock.acquire(blocking=False):
                return keys[kid]  # another request is refreshing them: the old keys serve meanwhile
        elif not state.lock.acquire(timeout=self.lock_wait):
            # another request is fetching, slowly: do not tie up this worker thread too
            raise IssuerUnavailable("cannot check the token now: its issuer is slow to hand out "
                                    "its signing keys", retry_after=int(self.min_refresh))
        try:  # one fetch per issuer at a time; the requests that waited use what it got
            now = self.clock()
            fresh = state.fetched is not None and now - state.fetched < self.cache_seconds
            if kid in state.keys and fresh:
                return state.keys[kid]
            if state.attempted is None or now - state.attempted >= self.min_refresh:
                state.attempted = now
                try:
                    state.keys = self._fetch(issuer)
                except FetchError as exc:
                    state.failing = True
                    log.warning("cannot fetch the signing keys of token issuer %s: %s", issuer, exc)
                else:
                    state.fetched, state.failing = now, False
            if kid in state.keys:  # after a failed refresh, the keys it had are better than none
                return state.keys[kid]
            if state.failing or state.fetched is None:
                raise IssuerUnavailable("cannot check the token now: its issuer's signing keys "
                                        "cannot be fetched", retry_after=int(self.min_refresh))
        finally:
            state.lock.release()
        raise Unauthorized("the token is signed with a key its issuer does not publish")

    def _fetch(self, issuer: str) -> dict[str, dict[str, Any]]:
        discovery = self._get(issuer.rstrip("/") + DISCOVERY)
        if discovery.get("issuer") != issuer:
            raise FetchError(f"its discovery document names issuer {discovery.get('issuer')!r}")
        uri = discovery.get("jwks_uri")
        if not isinstance(uri, str) or not uri.startswith("https://"):
            raise FetchError("its discovery document has no https jwks_uri")
        listed = self._get(uri).get("keys")
        if not isinstance(listed, list):
            raise FetchError(f"{uri} is not a JWKS")
        keys = {}
        for jwk in listed:
            if (isinstance(jwk, dict) and isinstance(jwk.get("kid"), str)
                    and jwk.get("use", "sig") == "sig" and jwk.get("kty") in ("RSA", "EC", "OKP")
                    and "d" not in jwk):  # public signing keys only
                keys[jwk["kid"]] = jwk
        if not keys:
            raise FetchError(f"{uri} has no public signing keys with a kid")
        return keys

    def _get(self, url: str) -> dict[str, Any]:
        try:
            response = self.session.get(url, timeout=self.timeout, headers={"Accept": "application/json"})
        except requests.RequestException as exc:
            raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None
        if response.status_code != 200:
            raise FetchError(f"{url} answered HTTP {response.status_code}")
        if len(response.content) > MAX_DOCUMENT_BYTES:
            raise FetchError(f"{url} is larger than {MAX_DOCUMENT_BYTES} bytes")
        try:
            document = response.json()
        except ValueError:
            raise FetchError(f"{url} is not JSON") from None
        if not isinstance(document, dict):
            raise FetchError(f"{url} is not a JSON object")
        return document


def public_key(jwk: Mapping[str, Any], algorithm: str) -> Any:
    """The key to check an `algorithm` signature with; Unauthorized if the JWK is not one for it.

    The JWK's own alg can only narrow what it is used for, never widen it."""
    kty, curves = KEY_TYPES[algorithm]
    declared = jwk.get("alg")
    if jwk.get("kty") != kty or (curves and jwk.get("crv") not in curves) or \
            (declared is not None and declared != algorithm):
        raise Unauthorized("the token's algorithm does not match its issuer's key")
    try:
        key = jwt.PyJWK(dict(jwk), algorithm=algorithm).key
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        log.warning("a signing key (kid %s) of a token issuer cannot be used: %s", jwk.get("kid"), exc)
        raise Unauthorized("the token's signing key cannot be used") from None
    if not isinstance(key, PUBLIC_KEYS):
        raise Unauthorized("the token's signing key cannot be used")
    if isinstance(key, RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise Unauthorized(f"the token's signing key is shorter than {MIN_RSA_BITS} bits")
    return key


# ----------------------------------------------------------------------------- the request hook

def _path(path: str) -> str:
    path = re.sub("//+", "/", path)
    return path[:-1] if len(path) > 1 and path.endswith("/") else path


def map_user(user_map: UserMap, principal: str) -> str | None:
    """The canonical name of the first rule whose principal matches, \\1... filled in; None if none."""
    for pattern, canonical in user_map.rules:
        if isinstance(pattern, str):
            if pattern == principal:
                return canonical
            continue
        match = pattern.search(principal)
        if match:
            return _fill(canonical, match)
    return None


def _fill(canonical: str, match: re.Match[str]) -> str:
    return re.sub(r"\\(\d)", lambda ref: match.group(int(ref.group(1))) or "", canonical)


class Authenticator:
    """Called by the render tool before every handler (RESTD_AUTHENTICATION = TOKEN): the Identity
    a request's bearer token proves, None for an open path, or a RestdError to answer with."""

    def __init__(self, settings: Settings, open_paths: Iterable[str] = (),
                 issuers: Issuers | None = None,
                 htcondor: Callable[[str], str] | None = None) -> None:
        self.settings = settings
        self.open_paths = frozenset(open_paths)
        # who HTCondor says a token is for (htctokens.TokenUsers.user): for reads with
        # RESTD_HTCONDOR_TOKENS, for actions with RESTD_ACTIONS
        self.htcondor = htcondor
        self.issuers = issuers if issuers is not None else Issuers(settings.token_issuers)
        self._keys: dict[tuple[str, str, str], tuple[dict[str, Any], Any]] = {}
        if not settings.token_audience:
            log.warning("RESTD_TOKEN_AUDIENCE is empty: tokens are accepted whatever their aud, "
                        "including those the issuers made for other services")

    def __call__(self, path: str, authorization: str | None, params: Mapping[str, Any],
                 method: str = "GET") -> Identity | None:
        if any(name in params for name in TOKEN_IN_URL):
            raise BadRequest("a token in the URL is refused (URLs are logged); send it in an "
                             "Authorization: Bearer header")
        if authorization is not None and "," in authorization:
            # a token has no comma: this is two credentials (two Authorization headers, joined by
            # a server or a proxy), and which one counts would be a guess
            raise BadRequest("more than one Authorization header (or credential); send one")
        if _path(path) in self.open_paths:
            return None
        scheme, _, token = (authorization or "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise token_required()
        if self._htcondor_says(token, method):
            assert self.htcondor is not None
            user = self.htcondor(token)
        else:
            issuer, claims = self.verify(token)
            user = self.user(issuer, claims)
        return Identity(user, user in self.settings.admin_users)

    def _htcondor_says(self, token: str, method: str) -> bool:
        """Whether HTCondor, not this daemon, checks the token: one of HTCondor's own (HS*, an
        IDTOKEN) or from an issuer not listed here, where HTCondor tokens are accepted."""
        if self.htcondor is None:
            return False
        writing = method in ("POST", "PATCH")
        if not (self.settings.actions if writing else self.settings.htcondor_tokens):
            return False
        try:
            header = jwt.get_unverified_header(token)
            issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return False  # verify() says what is wrong with it
        algorithm = header.get("alg")
        return (isinstance(algorithm, str) and algorithm.upper().startswith("HS")) or \
            issuer not in self.settings.token_issuers

    def verify(self, token: str) -> tuple[str, dict[str, Any]]:
        """The issuer and claims of a token that verifies; Unauthorized (or 503) otherwise."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("the token is not a well-formed JWT") from None
        algorithm = header.get("alg")  # first of all: none and HMAC go no further
        if not isinstance(algorithm, str) or algorithm not in KEY_TYPES:
            raise Unauthorized("the token is not signed with an accepted algorithm "
                               f"({', '.join(ALGORITHMS)})")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("the token's header has no key id (kid)")
        try:  # only to learn whose keys to check it with
            unverified = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise Unauthorized("the token is not a well-formed JWT") from None
        issuer = unverified.get("iss")
        if not isinstance(issuer, str) or issuer not in self.settings.token_issuers:
            raise Unauthorized("the token's issuer is not one this server trusts")
        key = self._key(issuer, kid, algorithm)
        audience = list(self.settings.token_audience)
        required = ["exp", "iss", *(["aud"] if audience else [])]
        for claim in TIME_CLAIMS:  # PyJWT would take "exp": "99999999999" as a date
            value = unverified.get(claim)
            if claim in unverified and (not isinstance(value, (int, float)) or isinstance(value, bool)
                                        or not math.isfinite(value)):
                raise Unauthorized(f"the token's {claim} claim is not a number of seconds (NumericDate)")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key, algorithms=[algorithm], audience=audience or None, issuer=issuer,
                leeway=LEEWAY, options={"require": required, "verify_aud": bool(audience),
                                        # the user claim is checked by user() (403, as documented);
                                        # jti is not used
                                        "verify_sub": False, "verify_jti": False})
        except jwt.ExpiredSignatureError:
            raise Unauthorized("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized("the token is not meant for this server (aud)") from None
        except jwt.MissingRequiredClaimError as exc:
            claim = exc.claim if exc.claim in required else "a required claim"
            raise Unauthorized(f"the token has no {claim} claim") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized("the token's signature does not verify") from None
        except jwt.PyJWTError:
            raise Unauthorized("the token is not valid") from None
        return issuer, claims

    def _key(self, issuer: str, kid: str, algorithm: str) -> Any:
        jwk = self.issuers.jwk(issuer, kid)
        cached = self._keys.get((issuer, kid, algorithm))
        if cached is not None and cached[0] is jwk:
            return cached[1]
        key = public_key(jwk, algorithm)
        self._keys[(issuer, kid, algorithm)] = (jwk, key)
        return key

    def user(self, issuer: str, claims: Mapping[str, Any]) -> str:
        """The HTCondor user name (user@domain) the token's user claim maps to; Forbidden if none."""
        claim = self.settings.token_user_claim
        value = claims.get(claim)
        if not isinstance(value, str) or not value.strip():
            raise Forbidden(f"the token has no {claim} claim naming its user")
        name: str | None = value
        user_map = self.settings.token_user_mapfile
        if user_map.path:
            name = map_user(user_map, f"{issuer},{value}")
            if name is None:
                raise Forbidden("no line of RESTD_TOKEN_USER_MAPFILE maps the token's user to an "
                                "HTCondor user")
        assert name is not None
        if "@" not in name:
            name = f"{name}@{self.settings.uid_domain}"
        if not USER_NAME.fullmatch(name):
            raise Forbidden("the token's user does not map to an HTCondor user name (user@domain)")
        return name


# ------------------------------------------------------------------------------------- the logs

JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
TOKEN_PARAMETER = re.compile(r"(\baccess_token=)[^&\s\"]*", re.IGNORECASE)


def redact(text: str) -> str:
    """`text` with anything that looks like a JWT, or an access_token= value, replaced."""
    return TOKEN_PARAMETER.sub(r"\1<REDACTED>", JWT_LIKE.sub("<REDACTED>", text))


class RedactTokens(logging.Filter):
    """A safety net on CherryPy's access and error logs: a token a client put in the URL (which
    is refused, but logged as every request line is) is not written to the log."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        clean = redact(text)
        if clean != text:
            record.msg, record.args = clean, None
        return True
