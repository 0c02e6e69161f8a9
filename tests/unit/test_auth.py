"""Token verification: only our own EdDSA tokens, complete and current, get through."""
import base64
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared import errors
from shared.auth import TokenVerifier, key_id, load_public_keys
from user_service.tokens import TokenIssuer


@pytest.fixture
def issuer(key_files):
    return TokenIssuer(key_files[0], issuer="imageproc", audience="imageproc-api", ttl_seconds=60)


@pytest.fixture
def verifier(key_files):
    return TokenVerifier(load_public_keys(key_files[1]), issuer="imageproc", audience="imageproc-api")


def claims(**overrides):
    now = int(time.time())
    base = {"sub": "u1", "iss": "imageproc", "aud": "imageproc-api", "iat": now, "exp": now + 60, "jti": "j1"}
    base.update(overrides)
    return {key: value for key, value in base.items() if value is not None}


def sign(issuer, payload, **headers):
    return jwt.encode(payload, issuer.private_key, algorithm="EdDSA", headers={"kid": issuer.kid, **headers})


def b64(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_token_we_issued_is_accepted(issuer, verifier):
    token = issuer.issue("user-1")["access_token"]
    assert verifier.claims(token)["sub"] == "user-1"


@pytest.mark.parametrize("missing", ["exp", "sub", "iss", "aud", "iat", "jti"])
def test_every_required_claim_is_required(issuer, verifier, missing):
    with pytest.raises(errors.Unauthorized):
        verifier.claims(sign(issuer, claims(**{missing: None})))


@pytest.mark.parametrize(
    "override", [{"exp": int(time.time()) - 10}, {"iss": "someone-else"}, {"aud": "another-api"}]
)
def test_expired_or_foreign_tokens_are_refused(issuer, verifier, override):
    with pytest.raises(errors.Unauthorized):
        verifier.claims(sign(issuer, claims(**override)))


def test_alg_none_is_refused(issuer, verifier):
    token = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': issuer.kid})}.{b64(claims())}."
    with pytest.raises(errors.Unauthorized):
        verifier.claims(token)


def test_algorithm_confusion_with_the_public_key_as_hmac_secret_is_refused(issuer, verifier, key_files):
    public_pem = open(key_files[1], "rb").read()
    header = b64({"alg": "HS256", "typ": "JWT", "kid": issuer.kid})
    body = b64(claims())
    import hashlib
    import hmac

    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    token = f"{header}.{body}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"
    with pytest.raises(errors.Unauthorized):
        verifier.claims(token)


def test_tampered_payload_is_refused(issuer, verifier):
    header, _, signature = issuer.issue("user-1")["access_token"].split(".")
    forged = f"{header}.{b64(claims(sub='admin'))}.{signature}"
    with pytest.raises(errors.Unauthorized):
        verifier.claims(forged)


def test_a_key_we_do_not_know_is_refused(verifier):
    stranger = Ed25519PrivateKey.generate()
    kid = key_id(stranger.public_key())
    token = jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": kid})
    with pytest.raises(errors.Unauthorized):
        verifier.claims(token)


def test_a_stolen_kid_does_not_help_another_key(issuer, verifier):
    stranger = Ed25519PrivateKey.generate()
    token = jwt.encode(claims(), stranger, algorithm="EdDSA", headers={"kid": issuer.kid})
    with pytest.raises(errors.Unauthorized):
        verifier.claims(token)


def test_key_id_is_the_rfc7638_thumbprint():
    # RFC 8037 appendix A.3: the thumbprint of its example Ed25519 key.
    raw = base64.urlsafe_b64decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
    public_key = serialization.load_der_public_key(bytes.fromhex("302a300506032b6570032100") + raw)
    assert key_id(public_key) == "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_a_token_carries_the_users_contact_for_the_image_emails(issuer, verifier):
    token = issuer.issue("user-1", {"name": "Ada", "email": "ada@example.com", "password_hash": "never"})["access_token"]
    claims = verifier.claims(token)
    assert (claims["name"], claims["email"]) == ("Ada", "ada@example.com")
    assert "password_hash" not in claims
    assert "email" not in verifier.claims(issuer.issue("user-1")["access_token"])
