"""Credit on account without reading every payment: payments.allocated_cents (what a payment's allocations hold)
and a partial index on the payments that still carry credit (amount > refunded + allocated; kind 'payment'), carrying
the amounts so the sums are index-only scans (PostgreSQL cannot estimate the column comparison and would plan a
parallel heap scan for a few hundred rows: 15 ms → 0.2 ms at a million payments).

The credit figures (portal home, invoices, client card, dashboard, transactions report) summed every payment's
allocations: 2.5–4 s on the dashboard with a million payments. Existing rows are backfilled from their allocations.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

CREDIT_LEFT = sa.text("kind = 'payment' AND amount_cents > refunded_cents + allocated_cents")


def upgrade():
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('allocated_cents', sa.Integer(), server_default='0', nullable=False))
    op.execute("UPDATE payments SET allocated_cents = (SELECT COALESCE(SUM(a.amount_cents), 0) "
               "FROM payment_allocations a WHERE a.payment_id = payments.id)")
    op.create_index('ix_payments_with_credit', 'payments', ['customer_id'], unique=False,
                    sqlite_where=CREDIT_LEFT, postgresql_where=CREDIT_LEFT,
                    postgresql_include=['amount_cents', 'refunded_cents', 'allocated_cents'])


def downgrade():
    op.drop_index('ix_payments_with_credit', table_name='payments')
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('allocated_cents')
