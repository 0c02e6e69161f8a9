"""claims: when a lease was first found run out, so that its holder gets one last chance to renew

Revision ID: 0005_claim_overdue
Revises: 0004_variants
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_claim_overdue"
down_revision = "0004_variants"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("images", sa.Column("claim_overdue_since", sa.DateTime(timezone=True)))


def downgrade():
    op.drop_column("images", "claim_overdue_since")
