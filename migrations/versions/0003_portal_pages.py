"""P-5: one unsettled deposit charge per estimate; P-6: staff replies to portal messages

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

import portal.models.types

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

OPEN_ESTIMATE_ATTEMPT = "estimate_id IS NOT NULL AND status IN ('pending', 'unknown')"


def upgrade():
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.create_index('uq_charge_attempts_one_open_estimate', ['estimate_id'], unique=True,
                              sqlite_where=sa.text(OPEN_ESTIMATE_ATTEMPT),
                              postgresql_where=sa.text(OPEN_ESTIMATE_ATTEMPT))
    with op.batch_alter_table('message_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('replied_at', portal.models.types.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('replied_by_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('reply_body', sa.Text(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_message_requests_replied_by_id_staff_users'), 'staff_users',
                                    ['replied_by_id'], ['id'], ondelete='SET NULL')


def downgrade():
    with op.batch_alter_table('message_requests', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_message_requests_replied_by_id_staff_users'), type_='foreignkey')
        batch_op.drop_column('reply_body')
        batch_op.drop_column('replied_by_id')
        batch_op.drop_column('replied_at')
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_index('uq_charge_attempts_one_open_estimate')
