"""images and the upload_service outbox

Revision ID: 0001_images
Revises:
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0001_images"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "images",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("user_id", UUID(as_uuid=True), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("original_filename", sa.String(255), nullable=False),
        sa.Column("operations", sa.JSON, nullable=False),
        sa.Column("original_path", sa.String(255), nullable=False),
        sa.Column("width", sa.Integer, nullable=False),
        sa.Column("height", sa.Integer, nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("output_path", sa.String(255)),
        sa.Column("output_width", sa.Integer),
        sa.Column("output_height", sa.Integer),
        sa.Column("output_format", sa.String(10)),
        sa.Column("output_size_bytes", sa.BigInteger),
        sa.Column("error_code", sa.String(50)),
        sa.Column("error_message", sa.String(500)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_images_user_created", "images", ["user_id", sa.text("created_at DESC"), sa.text("id DESC")]
    )
    op.create_table(
        "upload_outbox",
        sa.Column("id", UUID(as_uuid=True), primary_key=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("trace_context", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_upload_outbox_created_at", "upload_outbox", ["created_at"])
    op.create_index("ix_upload_outbox_published_at", "upload_outbox", ["published_at"])


def downgrade():
    op.drop_table("upload_outbox")
    op.drop_table("images")
