"""One-time keys of staff create forms (jobs, estimates, invoices): a double submit creates nothing new

Revision ID: 0004
Revises: 0003
"""
import sqlalchemy as sa
from alembic import op

import portal.models.types

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'form_submissions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('form_key', sa.String(length=80), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('target_id', sa.Integer(), nullable=False),
        sa.Column('created_at', portal.models.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_form_submissions')),
        sa.UniqueConstraint('form_key', name=op.f('uq_form_submissions_form_key')),
    )


def downgrade():
    op.drop_table('form_submissions')
