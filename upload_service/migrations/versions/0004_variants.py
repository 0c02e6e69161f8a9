"""variants: the outputs an upload asked for, their results, and which one failed

Revision ID: 0004_variants
Revises: 0003_processing_claims
Create Date: 2026-12-06
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_variants"
down_revision = "0003_processing_claims"
branch_labels = None
depends_on = None


def upgrade():
    # Nullable: older rows have one output, described by `operations` and `output_*`.
    op.add_column("images", sa.Column("variants", sa.JSON))
    op.add_column("images", sa.Column("variant_outputs", sa.JSON))
    op.add_column("images", sa.Column("error_details", sa.JSON))


def downgrade():
    op.drop_column("images", "error_details")
    op.drop_column("images", "variant_outputs")
    op.drop_column("images", "variants")
