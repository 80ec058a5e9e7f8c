"""Invoice automation: "Pay all" charges over several invoices (INV-4), the last auto-invoicing cadence date (INV-3)

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('charge_attempt_invoices',
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('invoice_id', sa.Integer(), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['charge_attempts.id'], name=op.f('fk_charge_attempt_invoices_attempt_id_charge_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['invoice_id'], ['invoices.id'], name=op.f('fk_charge_attempt_invoices_invoice_id_invoices')),
    sa.PrimaryKeyConstraint('attempt_id', 'invoice_id', name=op.f('pk_charge_attempt_invoices'))
    )
    with op.batch_alter_table('charge_attempt_invoices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_charge_attempt_invoices_invoice_id'), ['invoice_id'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('auto_invoice_last_run_on', sa.Date(), nullable=True))


def downgrade():
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('auto_invoice_last_run_on')
    with op.batch_alter_table('charge_attempt_invoices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_charge_attempt_invoices_invoice_id'))
    op.drop_table('charge_attempt_invoices')
