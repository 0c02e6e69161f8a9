"""Small helpers the integration and end-to-end tests share."""
import json
import re
import uuid

import requests

from user_service.tokens import TokenIssuer

ACCOUNT_PASSWORD = "a long enough password"


def sign_up_and_log_in(base_url, name="User"):
    """(user, token) of a fresh account, signed up and logged in through the gateway at `base_url`;
    its password is ACCOUNT_PASSWORD. Usable from fixtures of any scope."""
    email = f"{re.sub(r'[^a-z]', '', name.lower()) or 'user'}.{uuid.uuid4().hex[:10]}@example.com"
    password = ACCOUNT_PASSWORD
    signup = requests.post(
        f"{base_url}/api/users/signup", json={"name": name, "email": email, "password": password}, timeout=30
    )
    assert signup.status_code == 201, signup.text
    login = requests.post(f"{base_url}/api/users/login", json={"email": email, "password": password}, timeout=30)
    assert login.status_code == 200, login.text
    return signup.json()["user"], login.json()["access_token"]


def issuer_from(config):
    return TokenIssuer(
        config["JWT_PRIVATE_KEY_FILE"],
        issuer=config["JWT_ISSUER"],
        audience=config["JWT_AUDIENCE"],
        ttl_seconds=int(config["JWT_TTL_SECONDS"]),
    )


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


class ImagesClient:
    """The image half of the API as one user sees it."""

    def __init__(self, base_url, token):
        self.base_url = base_url.rstrip("/")
        self.headers = bearer(token)

    def presets(self):
        return requests.get(f"{self.base_url}/api/presets", headers=self.headers, timeout=10)

    def upload(self, path_or_bytes, operations=None, filename="photo.jpg", content_type="image/jpeg", **fields):
        content = path_or_bytes if isinstance(path_or_bytes, bytes) else open(path_or_bytes, "rb").read()
        data = dict(fields)
        if operations is not None:
            data["operations"] = operations if isinstance(operations, str) else json.dumps(operations)
        return requests.post(
            f"{self.base_url}/api/images/upload",
            headers=self.headers,
            files={"image": (filename, content, content_type)},
            data=data,
            timeout=60,
        )

    def status(self, image_id, wait=None):
        params = {} if wait is None else {"wait": wait}
        return requests.get(
            f"{self.base_url}/api/images/status/{image_id}", headers=self.headers, params=params, timeout=90
        )

    def get(self, image_id):
        return requests.get(f"{self.base_url}/api/images/{image_id}", headers=self.headers, timeout=30)

    def list(self, **params):
        return requests.get(f"{self.base_url}/api/images", headers=self.headers, params=params, timeout=30)

    def download(self, image_id, variant=None):
        params = {} if variant is None else {"variant": variant}
        return requests.get(
            f"{self.base_url}/api/images/{image_id}/download", headers=self.headers, params=params, timeout=60
        )

    def delete(self, image_id):
        return requests.delete(f"{self.base_url}/api/images/{image_id}", headers=self.headers, timeout=30)

    def wait_until_done(self, image_id, timeout=60):
        response = self.status(image_id, wait=min(timeout, 60))
        assert response.status_code == 200, response.text
        return response.json()


def new_user_id():
    return str(uuid.uuid4())
