"""Creates the development signing key pair on first run: `python -m shared.keys`.

Never committed (var/ is ignored); production deployments mount their own key files and point
JWT_PRIVATE_KEY_FILE / JWT_PUBLIC_KEY_FILE at them.
"""
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.config import load_config, resolve_path
from shared.settings import setting


def ensure_key_pair(private_path, public_path):
    private_path, public_path = resolve_path(private_path), resolve_path(public_path)
    if private_path.exists() and public_path.exists():
        return False
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    private_key = Ed25519PrivateKey.generate()
    private_pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as private_file:
        private_file.write(private_pem)
    public_path.write_bytes(public_pem)
    return True


def main():
    config = load_config(sys.argv[1] if len(sys.argv) > 1 else None)
    created = ensure_key_pair(setting(config, "JWT_PRIVATE_KEY_FILE"), setting(config, "JWT_PUBLIC_KEY_FILE").split(",")[0])
    print("created development JWT key pair" if created else "JWT key pair present")


if __name__ == "__main__":
    main()
