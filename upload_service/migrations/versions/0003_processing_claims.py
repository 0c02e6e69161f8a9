"""processing claims with a lease: crashes are counted when a lease runs out, not per start

Revision ID: 0003_processing_claims
Revises: 0002_processing_attempts
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_processing_claims"
down_revision = "0002_processing_attempts"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("images", sa.Column("processing_crashes", sa.Integer, nullable=False, server_default="0"))
    op.add_column("images", sa.Column("claim_token", sa.String(32)))
    op.add_column("images", sa.Column("claim_expires_at", sa.DateTime(timezone=True)))


def downgrade():
    op.drop_column("images", "claim_expires_at")
    op.drop_column("images", "claim_token")
    op.drop_column("images", "processing_crashes")
