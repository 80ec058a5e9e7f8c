"""What each customer has paid and how many payments they made, kept by the database (issue 15, the client card of a
long history): the card read every payment of the customer to sum them (~1.4 ms at 10,000 payments, growing with
the history); it now reads a few rows.

`customer_payment_sums` holds rows of differences (customer, paid = amount less refunded of the payments that
succeeded, payments). PostgreSQL triggers (portal/models/ledger_sums.py) add them in the writer's own transaction,
whatever the path: INSERT and DELETE by statement (one row per customer per statement), UPDATE by row and only when
the customer, the status, the amount or the refunded amount changes, TRUNCATE empties the table. The scheduler rule
`ledger_day_sums` folds each customer's rows into one. The payments already there are summed once here. SQLite
keeps no triggers: the card sums the payments there.

Revision ID: 0020
Revises: 0019
"""
import sqlalchemy as sa
from alembic import op

from portal.models.ledger_sums import customer_trigger_ddl, drop_customer_trigger_ddl

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'customer_payment_sums',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('customer_id', sa.Integer(), nullable=False),
        sa.Column('paid_cents', sa.BigInteger(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_payment_sums')),
    )
    op.create_index('ix_customer_payment_sums_customer', 'customer_payment_sums', ['customer_id'], unique=False,
                    postgresql_include=['paid_cents', 'n'])
    if op.get_bind().dialect.name == 'postgresql':
        for statement in customer_trigger_ddl():
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for statement in drop_customer_trigger_ddl():
            op.execute(statement)
    op.drop_index('ix_customer_payment_sums_customer', table_name='customer_payment_sums')
    op.drop_table('customer_payment_sums')
