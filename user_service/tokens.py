"""Access tokens: EdDSA-signed JWTs; the other services verify them with the public key only."""
import time
import uuid

import jwt
from cryptography.hazmat.primitives import serialization

from shared.auth import ALGORITHM, key_id
from shared.config import resolve_path


class TokenIssuer:
    def __init__(self, private_key_path, issuer, audience, ttl_seconds):
        self.private_key = serialization.load_pem_private_key(
            resolve_path(private_key_path).read_bytes(), password=None
        )
        self.kid = key_id(self.private_key.public_key())
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id, contact=None):
        """`contact`: the user's {"name", "email"}, carried as claims so that the services an upload
        goes through can hand the owner's address to the image's email without asking user_service
        (shared/owner.py)."""
        # iat to the millisecond (NumericDate may be fractional): a password change revokes every
        # token issued before it, even one issued in the same second.
        now = round(time.time(), 3)
        claims = {
            "sub": str(user_id),
            "iss": self.issuer,
            "aud": self.audience,
            "iat": now,
            "exp": int(now) + self.ttl_seconds,
            "jti": uuid.uuid4().hex,
            **{key: value for key, value in (contact or {}).items() if key in ("name", "email") and value},
        }
        token = jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}
