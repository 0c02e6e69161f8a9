import datetime as dt
import uuid

from sqlalchemy import JSON, BigInteger, Column, DateTime, Index, Integer, String
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.orm import declarative_base

from shared.outbox import outbox_model

Base = declarative_base()

QUEUED, PROCESSING, COMPLETED, FAILED = "queued", "processing", "completed", "failed"
FINAL_STATUSES = (COMPLETED, FAILED)


def utcnow():
    return dt.datetime.now(dt.timezone.utc)


class Image(Base):
    __tablename__ = "images"

    id = Column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    user_id = Column(UUID(as_uuid=True), nullable=False)
    status = Column(String(20), nullable=False, default=QUEUED)
    original_filename = Column(String(255), nullable=False)
    operations = Column(JSON, nullable=False)
    # The outputs asked for, in request order, presets resolved: [{"name", "operations"}]; None on
    # rows older than variants (their one output is `operations`, the variant `default`).
    # `operations` and `output_*` hold the primary variant (`default` when there is one, else the first).
    variants = Column(JSON)
    # Each variant's result once completed, in request order: {name: {"width", "height", "format",
    # "size_bytes", "path"}}.
    variant_outputs = Column(JSON)
    # The original, as stored under STORAGE_DIR (server-chosen name).
    original_path = Column(String(255), nullable=False)
    width = Column(Integer, nullable=False)
    height = Column(Integer, nullable=False)
    format = Column(String(10), nullable=False)
    size_bytes = Column(BigInteger, nullable=False)
    # The result, once completed.
    output_path = Column(String(255))
    output_width = Column(Integer)
    output_height = Column(Integer)
    output_format = Column(String(10))
    output_size_bytes = Column(BigInteger)
    # Why it failed, once failed.
    error_code = Column(String(50))
    error_message = Column(String(500))
    error_details = Column(JSON)  # e.g. {"variant": name}: which variant failed
    # Processing claims (upload_service/claims.py): how many runs process_service started, how
    # many of them vanished (their lease ran out: the worker died), the lease of the current run,
    # and since when that lease is overdue (its holder's last chance to renew, claims.py).
    processing_attempts = Column(Integer, nullable=False, default=0)
    processing_crashes = Column(Integer, nullable=False, default=0)
    claim_token = Column(String(32))
    claim_expires_at = Column(DateTime(timezone=True))
    claim_overdue_since = Column(DateTime(timezone=True))
    created_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)
    updated_at = Column(DateTime(timezone=True), nullable=False, default=utcnow)

    # Newest first per owner, with the id as tie-breaker: the keyset of the paginated list.
    __table_args__ = (Index("ix_images_user_created", user_id, created_at.desc(), id.desc()),)


OutboxEvent = outbox_model(Base, "upload_outbox")
