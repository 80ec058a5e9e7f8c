"""The client card of a customer with years of history (issue 15): refunds carry their payment's customer
(`refunds.customer_id`, backfilled, indexed with the date), so a customer's refunds are found without reading every
refund of the business (the card's history page walked the refunds newest first and looked up each one's payment:
~6 ms at 10k refunds, and all of them for a customer with none), and a customer's payments carry the figures the
card sums (`ix_payments_customer_sums` replaces `ix_payments_customer_id`, INCLUDE status, amount_cents,
refunded_cents on PostgreSQL), so lifetime paid is an index-only scan. SQLite ignores INCLUDE.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('refunds') as batch:
        batch.add_column(sa.Column('customer_id', sa.Integer(), nullable=True))
    op.execute("UPDATE refunds SET customer_id = (SELECT p.customer_id FROM payments p WHERE p.id = refunds.payment_id)")
    with op.batch_alter_table('refunds') as batch:
        batch.alter_column('customer_id', existing_type=sa.Integer(), nullable=False)
        batch.create_foreign_key('fk_refunds_customer_id_customers', 'customers', ['customer_id'], ['id'])
        batch.create_index('ix_refunds_customer_created', ['customer_id', 'created_at'], unique=False)
    op.create_index('ix_payments_customer_sums', 'payments', ['customer_id'], unique=False,
                    postgresql_include=['status', 'amount_cents', 'refunded_cents'])
    op.drop_index('ix_payments_customer_id', table_name='payments')


def downgrade():
    op.create_index('ix_payments_customer_id', 'payments', ['customer_id'], unique=False)
    op.drop_index('ix_payments_customer_sums', table_name='payments')
    with op.batch_alter_table('refunds') as batch:
        batch.drop_index('ix_refunds_customer_created')
        batch.drop_constraint('fk_refunds_customer_id_customers', type_='foreignkey')
        batch.drop_column('customer_id')
