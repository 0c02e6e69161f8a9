import datetime as dt
import uuid

from sqlalchemy import Column, DateTime, Index, String, func
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import declarative_base

from shared.outbox import outbox_model

Base = declarative_base()


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


class User(Base):
    __tablename__ = "users"

    id = Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    name = Column(String(100), nullable=False)
    # Kept as typed; uniqueness and look-ups use the lower-cased form (emails compare case-insensitively).
    email = Column(String(254), nullable=False)
    password_hash = Column(String(100), nullable=False)
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    # Tokens issued before this instant are no longer accepted (password change).
    tokens_valid_after = Column(DateTime(timezone=True), nullable=True)

    __table_args__ = (Index("ix_users_email_lower", func.lower(email), unique=True),)

    def to_dict(self):
        return {
            "id": str(self.id),
            "name": self.name,
            "email": self.email,
            "created_at": self.created_at.isoformat(),
        }


class RevokedToken(Base):
    """A token revoked before it expired (logout). Kept until its own expiry."""

    __tablename__ = "revoked_tokens"

    jti = Column(String(64), primary_key=True)
    user_id = Column(UUID(as_uuid=True), nullable=False)
    expires_at = Column(DateTime(timezone=True), nullable=False, index=True)


OutboxEvent = outbox_model(Base, "user_outbox")
