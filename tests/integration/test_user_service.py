"""user_service against the real broker, database and Redis, through its HTTP entrypoints."""
import jwt
import pytest
import requests
from nameko.testing.services import entrypoint_hook
from sqlalchemy import select

from shared import errors
from shared.db import make_engine
from user_service.models import OutboxEvent
from user_service.service import UserService


@pytest.fixture
def user_service(container_factory, config):
    container = container_factory(UserService, config)
    container.start()
    return container


def signup(web_url, email="ada@example.com", password="correct horse battery", name="Ada"):
    return requests.post(f"{web_url}/api/users/signup", json={"name": name, "email": email, "password": password})


def login(web_url, email="ada@example.com", password="correct horse battery"):
    return requests.post(f"{web_url}/api/users/login", json={"email": email, "password": password})


def unique_email(prefix="ada"):
    import uuid

    return f"{prefix}.{uuid.uuid4().hex[:8]}@Example.com"


def test_signup_returns_user_without_secrets_and_announces_it(user_service, web_url, config):
    email = unique_email()
    response = signup(web_url, email=email)
    assert response.status_code == 201
    user = response.json()["user"]
    assert set(user) == {"id", "name", "email", "created_at"}
    assert user["email"] == email and user["name"] == "Ada"

    engine = make_engine(config["DATABASE_URL"])
    with engine.connect() as connection:
        event = connection.execute(
            select(OutboxEvent.event_type, OutboxEvent.payload, OutboxEvent.published_at).where(
                OutboxEvent.payload["user_id"].as_string() == user["id"]
            )
        ).one()
    engine.dispose()
    assert event.event_type == "user_registered"
    assert event.payload["email"] == email
    assert event.published_at is not None, "published right after the commit"


def test_signup_validation_names_each_bad_field(user_service, web_url):
    response = requests.post(f"{web_url}/api/users/signup", json={"name": "", "email": "nope", "password": "short"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert set(error["details"]) == {"name", "email", "password"}


@pytest.mark.parametrize("body", [b"{not json", b"[1,2]", b"\xff\xfe"])
def test_signup_rejects_bodies_that_are_not_json_objects(user_service, web_url, body):
    response = requests.post(
        f"{web_url}/api/users/signup", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_signup_rejects_control_characters_in_names(user_service, web_url):
    response = signup(web_url, email=unique_email(), name="Eve\r\nBcc: victim@example.com")
    assert response.status_code == 400
    assert "name" in response.json()["error"]["details"]


def test_duplicate_email_is_409_case_insensitively(user_service, web_url):
    email = unique_email()
    assert signup(web_url, email=email).status_code == 201
    response = signup(web_url, email=email.upper())
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "email_taken"


def test_a_login_holds_no_database_connection_while_bcrypt_runs(user_service, web_url, monkeypatch):
    """bcrypt takes ~0.3 s, longer when logins queue for the hashing slots: a burst of logins
    holding pooled connections meanwhile would leave none for anything else."""
    from user_service import service as service_module

    engine = next(ext for ext in user_service.extensions if ext.__class__.__name__ == "Database").engine
    held_while_hashing = []
    real_verify = service_module.verify_in_slot

    def watching(password, password_hash):
        held_while_hashing.append(engine.pool.checkedout())
        return real_verify(password, password_hash)

    monkeypatch.setattr(service_module, "verify_in_slot", watching)
    email = unique_email()
    assert signup(web_url, email=email).status_code == 201
    assert login(web_url, email=email).status_code == 200
    assert login(web_url, email=email, password="wrong password").status_code == 401
    assert login(web_url, email=unique_email("nobody")).status_code == 401
    assert held_while_hashing == [0, 0, 0]


def test_a_burst_of_logins_looks_users_up_no_more_at_once_than_there_are_cores(user_service, web_url, monkeypatch):
    """Logins are bcrypt-bound: the ones beyond a core each wait before their lookup, so a burst
    neither opens a database connection per login nor piles all its work on the event loop."""
    import os

    import eventlet

    from user_service import service as service_module

    email = unique_email()
    assert signup(web_url, email=email).status_code == 201
    inside, most = [0], [0]
    real_find = service_module.UserService._find_by_email

    def counting(self, address):
        inside[0] += 1
        most[0] = max(most[0], inside[0])
        try:
            eventlet.sleep(0.05)  # a slow lookup: the others have every chance to come in
            return real_find(self, address)
        finally:
            inside[0] -= 1

    monkeypatch.setattr(service_module.UserService, "_find_by_email", counting)
    answers = list(eventlet.GreenPool(8).imap(lambda _: login(web_url, email=email).status_code, range(8)))
    assert answers == [200] * 8
    assert most[0] == min(8, os.cpu_count())


def test_login_issues_a_verifiable_token_and_me_returns_the_user(user_service, web_url, config):
    email = unique_email()
    user = signup(web_url, email=email).json()["user"]
    response = login(web_url, email=email.lower())
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == config["JWT_TTL_SECONDS"]
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "EdDSA" and header["kid"]
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["sub"] == user["id"]
    assert {"iss", "aud", "exp", "iat", "jti"} <= set(claims)

    me = requests.get(f"{web_url}/api/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {"user": user}


def test_wrong_password_and_unknown_email_get_the_same_answer(user_service, web_url):
    email = unique_email()
    signup(web_url, email=email)
    wrong = login(web_url, email=email, password="wrong password!")
    unknown = login(web_url, email=unique_email("nobody"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.json()["error"]["code"] == "invalid_credentials"


def test_passwords_longer_than_72_bytes_stay_fully_significant(user_service, web_url):
    email = unique_email()
    password = "x" * 100 + "tail-one"
    assert signup(web_url, email=email, password=password).status_code == 201
    assert login(web_url, email=email, password="x" * 100 + "tail-two").status_code == 401
    assert login(web_url, email=email, password=password).status_code == 200


def test_repeated_failures_lock_the_account_for_a_while(user_service, web_url, config):
    email = unique_email()
    signup(web_url, email=email)
    for _ in range(config["LOGIN_MAX_FAILURES"]):
        assert login(web_url, email=email, password="wrong password!").status_code == 401
    locked = login(web_url, email=email)
    assert locked.status_code == 429
    assert locked.json()["error"]["code"] == "too_many_requests"


@pytest.mark.parametrize(
    "authorization", [None, "Bearer", "Bearer not.a.token", "Basic dXNlcjpwYXNz", "Bearer " + "e30." * 2]
)
def test_me_without_a_valid_token_is_401(user_service, web_url, authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = requests.get(f"{web_url}/api/users/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


def test_unknown_paths_and_methods_answer_json(user_service, web_url):
    missing = requests.get(f"{web_url}/api/users/nothing-here")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong_method = requests.delete(f"{web_url}/api/users/signup")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"]["code"] == "method_not_allowed"


def test_get_user_over_rpc(user_service, web_url):
    user = signup(web_url, email=unique_email()).json()["user"]
    with entrypoint_hook(user_service, "get_user") as get_user:
        assert get_user(user["id"]) == user
        with pytest.raises(errors.NotFound):
            get_user("00000000-0000-0000-0000-000000000000")


def test_healthz_reports_each_dependency(user_service, web_url):
    response = requests.get(f"{web_url}/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "redis": "ok", "amqp": "ok"}


def bearer_headers(token):
    return {"Authorization": f"Bearer {token}"}


def me(web_url, token):
    return requests.get(f"{web_url}/api/users/me", headers=bearer_headers(token))


def account(web_url, password="correct horse battery"):
    email = unique_email()
    signup(web_url, email=email, password=password)
    return email, login(web_url, email=email, password=password).json()["access_token"]


def test_logout_revokes_that_token_only(user_service, web_url):
    email, token = account(web_url)
    other = login(web_url, email=email).json()["access_token"]
    assert me(web_url, token).status_code == 200
    assert requests.post(f"{web_url}/api/users/logout", headers=bearer_headers(token)).status_code == 204
    refused = me(web_url, token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    assert me(web_url, other).status_code == 200


def test_a_password_change_revokes_every_older_token(user_service, web_url):
    email, token = account(web_url)
    other = login(web_url, email=email).json()["access_token"]
    wrong = requests.post(
        f"{web_url}/api/users/me/password",
        headers=bearer_headers(token),
        json={"current_password": "not it", "new_password": "a brand new password"},
    )
    assert wrong.status_code == 400 and "current_password" in wrong.json()["error"]["details"]
    changed = requests.post(
        f"{web_url}/api/users/me/password",
        headers=bearer_headers(token),
        json={"current_password": "correct horse battery", "new_password": "a brand new password"},
    )
    assert changed.status_code == 204
    assert me(web_url, token).status_code == 401
    assert me(web_url, other).status_code == 401
    assert login(web_url, email=email).status_code == 401
    fresh = login(web_url, email=email, password="a brand new password").json()["access_token"]
    assert me(web_url, fresh).status_code == 200


def test_a_revoked_token_stays_revoked_when_redis_forgets(user_service, web_url, redis_url):
    import redis as redis_client

    from shared.revocation import LOADED_KEY

    _, token = account(web_url)
    requests.post(f"{web_url}/api/users/logout", headers=bearer_headers(token))
    redis_client.Redis.from_url(redis_url).flushdb()  # as after a Redis restart without persistence
    assert me(web_url, token).status_code == 401, "answered from PostgreSQL meanwhile"
    with entrypoint_hook(user_service, "mirror_revocations") as mirror:
        mirror()
    assert redis_client.Redis.from_url(redis_url).exists(LOADED_KEY)
    assert me(web_url, token).status_code == 401, "and from the reloaded mirror"
