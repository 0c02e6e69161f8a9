"""user_service: signup, login, the current user; tells the others about new users by event."""
import datetime as dt
import logging
import uuid

import redis
from nameko.timer import timer
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from shared import errors, logs
from shared.auth import Auth
from shared.db import Database
from shared.health import check_amqp
from shared.http import http
from shared.rpc import rpc
from shared.service import Service
from shared.outbox import Outbox
from shared.revocation import is_revoked
from shared.settings import setting
from shared.tracing import TracedEventDispatcher
from shared.validation import load, load_json
from user_service.dependencies import LoginFailures, PasswordPolicy, Revocations, Tokens
from user_service.models import Base, OutboxEvent, RevokedToken, User
from user_service.passwords import hash_password, hashing_slot, verify_in_slot, verify_password
from user_service.schemas import LoginSchema, PasswordChangeSchema, SignupSchema, UserIdSchema

log = logging.getLogger(__name__)

OUTBOX = Outbox(OutboxEvent)


class UserService(Service):
    name = "user_service"

    db = Database(Base, "USER_DATABASE_URL")
    auth = Auth(check_revocation=False)  # this service holds the record: see _claims
    revocations = Revocations()
    tokens = Tokens()
    passwords = PasswordPolicy()
    throttle = LoginFailures()
    dispatch = TracedEventDispatcher()

    @http("POST", "/api/users/signup")
    def signup(self, request):
        data = load_json(SignupSchema(), request)
        password_hash = hash_password(data["password"], self.passwords.rounds)
        user = User(name=data["name"].strip(), email=data["email"].strip(), password_hash=password_hash)
        session = self.db.session
        session.add(user)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            # `from None`: the database error quotes the row, password hash included, and nameko
            # logs the whole chain.
            raise errors.EmailTaken(details={"email": ["Already registered."]}) from None
        logs.bind(user_id=user.id)
        registered = OUTBOX.add(session, "user_registered", {**user.to_dict(), "user_id": str(user.id)})
        body = {"user": user.to_dict()}
        session.commit()
        self._relay_outbox(only=[registered.id])
        log.info("user signed up")
        return 201, body

    @http("POST", "/api/users/login")
    def login(self, request):
        data = load_json(LoginSchema(), request)
        email = data["email"].strip()
        if self.throttle.is_locked(email):
            raise errors.TooManyRequests("Too many failed logins for this account; try again later")
        # A login is bcrypt-bound: as many run at once as there are cores, lookup included, so that
        # a burst of logins neither opens a database connection each nor piles all its work onto
        # the event loop at the same instant (health checks and other requests would wait behind).
        with hashing_slot():
            user = self._find_by_email(email)
            user_id = user.id if user else None
            contact = {"name": user.name, "email": user.email} if user else None
            # Unknown emails are checked against a dummy hash: same answer, similar time.
            password_hash = user.password_hash if user else self.passwords.dummy.value
            # bcrypt takes a quarter of a second: the pooled connection goes back first.
            self.db.session.rollback()
            verified = verify_in_slot(data["password"], password_hash)
        if not verified or user_id is None:
            self.throttle.record_failure(email)
            raise errors.InvalidCredentials()
        self.throttle.reset(email)
        logs.bind(user_id=user_id)
        return 200, self.tokens.issue(user_id, contact)

    @http("GET", "/api/users/me")
    def me(self, request):
        return 200, {"user": self._current_user(request).to_dict()}

    @http("POST", "/api/users/logout")
    def logout(self, request):
        """Revokes the token of this request (until it would have expired anyway)."""
        claims = self._claims(request)
        expires_at = dt.datetime.fromtimestamp(claims["exp"], dt.timezone.utc)
        self.db.session.execute(
            pg_insert(RevokedToken)
            .values(jti=claims["jti"], user_id=claims["sub"], expires_at=expires_at)
            .on_conflict_do_nothing()
        )
        self.db.session.commit()
        self.revocations.revoke(claims["jti"], claims["exp"])
        return 204, None

    @http("POST", "/api/users/me/password")
    def change_password(self, request):
        """Changes the password and revokes every token issued before (this one included)."""
        user = self._current_user(request)
        data = load_json(PasswordChangeSchema(), request)
        if not verify_password(data["current_password"], user.password_hash):
            raise errors.ValidationError(
                "The current password is not right", {"current_password": ["Does not match."]}
            )
        user.password_hash = hash_password(data["new_password"], self.passwords.rounds)
        user.tokens_valid_after = dt.datetime.now(dt.timezone.utc)
        self.db.session.commit()
        self.revocations.set_valid_after(user.id, user.tokens_valid_after.timestamp(), self.tokens.ttl_seconds)
        log.info("password changed")
        return 204, None

    @rpc
    def is_token_revoked(self, jti, user_id, issued_at):
        """The record's answer, for services that cannot read the Redis mirror right now."""
        return self._revoked_in_record({"jti": jti, "sub": user_id, "iat": issued_at})

    @rpc
    def get_user(self, user_id):
        """The public fields of one user (for emails); raises NotFound."""
        user_id = str(load(UserIdSchema(), {"user_id": user_id})["user_id"])
        user = self._user_or_none(user_id)
        if user is None:
            raise errors.NotFound(f"No user {user_id}")
        return user.to_dict()

    @timer(interval=2)
    def relay_outbox(self):
        self._relay_outbox()

    @timer(interval=5)
    def mirror_revocations(self):
        """Reloads the Redis mirror of revocations when Redis lost it (restart, flush)."""
        try:
            if self.revocations.is_loaded():
                return
            now = dt.datetime.now(dt.timezone.utc)
            tokens = self.db.session.execute(
                select(RevokedToken.jti, RevokedToken.expires_at).where(RevokedToken.expires_at > now)
            ).all()
            cutoff = now - dt.timedelta(seconds=self.tokens.ttl_seconds)
            users = self.db.session.execute(
                select(User.id, User.tokens_valid_after).where(User.tokens_valid_after > cutoff)
            ).all()
            self.revocations.load(
                [(jti, expires_at.timestamp()) for jti, expires_at in tokens],
                [(user_id, valid_after.timestamp()) for user_id, valid_after in users],
                self.tokens.ttl_seconds,
            )
            log.info("revocations mirrored to Redis", extra={"tokens": len(tokens), "users": len(users)})
        except redis.RedisError as exc:
            log.warning("revocation mirror unavailable: %s", exc)

    def _relay_outbox(self, only=None):
        OUTBOX.relay(lambda: self.db.get_session(close_on_exit=True), self.dispatch, only=only)

    def _checks(self):
        return {
            "database": lambda: self.db.session.execute(select(1)),
            "redis": self.throttle.ping,
            "amqp": check_amqp(setting(self.config, "AMQP_URI")),
        }

    def _claims(self, request):
        claims = self.auth.claims(request)
        known = self.revocations.check(claims)
        if known is None:
            known = self._revoked_in_record(claims)
        if known:
            raise errors.Unauthorized("The access token has been revoked")
        logs.bind(user_id=claims["sub"])
        return claims

    def _current_user(self, request):
        user = self._user_or_none(self._claims(request)["sub"])
        if user is None:
            raise errors.Unauthorized("The account no longer exists")
        return user

    def _revoked_in_record(self, claims):
        revoked = self.db.session.get(RevokedToken, str(claims["jti"]))
        user = self._user_or_none(claims["sub"])
        valid_after = user.tokens_valid_after.timestamp() if user and user.tokens_valid_after else None
        return is_revoked(claims, revoked is not None, valid_after)

    def _find_by_email(self, email):
        return self.db.session.scalars(select(User).where(func.lower(User.email) == email.lower())).first()

    def _user_or_none(self, user_id):
        try:
            user_id = uuid.UUID(str(user_id))
        except ValueError:
            return None
        return self.db.session.get(User, user_id)
