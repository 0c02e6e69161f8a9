"""JWT verification with the public key only: every service but user_service needs just this.

Tokens are EdDSA (Ed25519) signed by user_service, `kid` in the header naming the key (its RFC 7638
thumbprint), and must carry `sub`, `iss`, `aud`, `exp`, `iat` and `jti`. Anything else is 401.
"""
import base64
import hashlib
import json
import logging

import jwt
from cryptography.hazmat.primitives import serialization
from nameko.extensions import DependencyProvider
from nameko.exceptions import UnknownService
from nameko.rpc import ReplyListener

from shared import errors, owner, redis_client
from shared.config import resolve_path
from shared.revocation import RevocationCache
from shared.settings import setting
from shared.tracing import TracedServiceProxy

log = logging.getLogger(__name__)

ALGORITHM = "EdDSA"
REQUIRED_CLAIMS = ["sub", "iss", "aud", "exp", "iat", "jti"]


def key_id(public_key):
    """RFC 7638 JWK thumbprint of an Ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    x = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def load_public_keys(paths):
    """`JWT_PUBLIC_KEY_FILE` may list several files (comma separated) so that keys can be rotated."""
    keys = {}
    for path in str(paths).split(","):
        public_key = serialization.load_pem_public_key(resolve_path(path.strip()).read_bytes())
        keys[key_id(public_key)] = public_key
    return keys


class TokenVerifier:
    def __init__(self, public_keys, issuer, audience, leeway=0):
        self.public_keys = public_keys
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway

    def claims(self, token):
        try:
            header = jwt.get_unverified_header(token)
            public_key = self.public_keys.get(header.get("kid"))
            if public_key is None or header.get("alg") != ALGORITHM:
                raise errors.Unauthorized("The access token is not valid")
            return jwt.decode(
                token,
                public_key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise errors.Unauthorized("The access token has expired")
        except jwt.InvalidTokenError:
            raise errors.Unauthorized("The access token is not valid")

    def claims_from_request(self, request):
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.Unauthorized("A Bearer access token is required")
        return self.claims(token.strip())


class Authenticator:
    """What a worker sees: `self.auth.user_id(request)` or 401."""

    def __init__(self, verifier, is_revoked):
        self.verifier = verifier
        self.is_revoked = is_revoked

    def claims(self, request):
        claims = self.verifier.claims_from_request(request)
        if self.is_revoked is not None and self.is_revoked(claims):
            raise errors.Unauthorized("The access token has been revoked")
        return claims

    def user_id(self, request):
        return self.claims(request)["sub"]

    def user(self, request):
        """`(user id, contact)`: the contact (shared/owner.py) when the token carries one, else None."""
        claims = self.claims(request)
        return claims["sub"], owner.contact(claims)


class Auth(DependencyProvider):
    """Verifies the Bearer token of a request, revocations included (see shared.revocation):
    from the Redis mirror, or, when Redis cannot tell, by asking user_service over RPC.
    user_service itself passes `check_revocation=False` and checks its own record."""

    rpc_reply_listener = ReplyListener()

    def __init__(self, check_revocation=True):
        self.check_revocation = check_revocation

    def setup(self):
        config = self.container.config
        self.verifier = TokenVerifier(
            load_public_keys(setting(config, "JWT_PUBLIC_KEY_FILE")),
            issuer=setting(config, "JWT_ISSUER"),
            audience=setting(config, "JWT_AUDIENCE"),
        )
        # Not a RedisClient provider of its own: the mirror is one input of this one (see shared.redis_client).
        self.revocations = RevocationCache(redis_client.connect(setting(config, "REDIS_URL")))
        self.rpc_timeout = setting(config, "RPC_TIMEOUT_SECONDS")

    def get_dependency(self, worker_ctx):
        if not self.check_revocation:
            return Authenticator(self.verifier, None)

        def is_revoked(claims):
            known = self.revocations.check(claims)
            if known is not None:
                return known
            users = TracedServiceProxy(worker_ctx, "user_service", self.rpc_reply_listener, self.rpc_timeout)
            try:
                return users.is_token_revoked(claims["jti"], claims["sub"], claims["iat"])
            except UnknownService:
                # Neither the mirror nor the record can be read: refuse rather than guess.
                raise errors.ServiceUnavailable("Cannot check the access token right now; try again shortly")

        return Authenticator(self.verifier, is_revoked)
