"""count processing attempts, to fail an image whose processing keeps crashing

Revision ID: 0002_processing_attempts
Revises: 0001_images
Create Date: 2026-11-29
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_processing_attempts"
down_revision = "0001_images"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("images", sa.Column("processing_attempts", sa.Integer, nullable=False, server_default="0"))


def downgrade():
    op.drop_column("images", "processing_attempts")
