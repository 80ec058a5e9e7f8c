"""PAY-3: at most one unsettled charge attempt per invoice and per plan payment; hand-recorded payments once per form

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

OPEN_ATTEMPT = "invoice_id IS NOT NULL AND status IN ('pending', 'unknown')"
OPEN_PLAN_ATTEMPT = "plan_payment_id IS NOT NULL AND status IN ('pending', 'unknown')"


def upgrade():
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('form_key', sa.String(length=80), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_payments_form_key'), ['form_key'])
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.create_index('uq_charge_attempts_one_open_invoice', ['invoice_id'], unique=True,
                              sqlite_where=sa.text(OPEN_ATTEMPT), postgresql_where=sa.text(OPEN_ATTEMPT))
        batch_op.create_index('uq_charge_attempts_one_open_plan_payment', ['plan_payment_id'], unique=True,
                              sqlite_where=sa.text(OPEN_PLAN_ATTEMPT), postgresql_where=sa.text(OPEN_PLAN_ATTEMPT))


def downgrade():
    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_index('uq_charge_attempts_one_open_plan_payment')
        batch_op.drop_index('uq_charge_attempts_one_open_invoice')
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_payments_form_key'), type_='unique')
        batch_op.drop_column('form_key')
