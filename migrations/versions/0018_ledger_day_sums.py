"""The transactions report's sums per UTC day and type, kept by the database (issue 15): a year's sums read ~1,000 rows
instead of ~200,000 payments, refunds and declined attempts.

`ledger_day_sums` holds rows of differences (day, type, amount, fee, rows, positive amounts). PostgreSQL triggers
(portal/models/ledger_sums.py) add them in the writer's own transaction, whatever the path (ORM, bulk UPDATEs through
execute_dml, imports of past payments, refunds, COPY, TRUNCATE): INSERT and DELETE by statement (transition
tables: one row per day and type per statement), UPDATE by row and only when a summed column changes, TRUNCATE
empties the table's types. Nothing is updated in place, so concurrent writers (the billing run's workers) never
wait on a shared row; the scheduler rule `ledger_day_sums` folds each day's rows into one. The rows already there
are summed once here. SQLite keeps no triggers: the report reads the tables there.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

from portal.models.ledger_sums import drop_trigger_ddl, trigger_ddl

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'ledger_day_sums',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('type', sa.String(length=10), nullable=False),
        sa.Column('amount_cents', sa.BigInteger(), nullable=False),
        sa.Column('fee_cents', sa.BigInteger(), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('positive_cents', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_day_sums')),
    )
    op.create_index('ix_ledger_day_sums_day', 'ledger_day_sums', ['day', 'type'], unique=False,
                    postgresql_include=['amount_cents', 'fee_cents', 'n', 'positive_cents'])
    if op.get_bind().dialect.name == 'postgresql':
        for statement in trigger_ddl():
            op.execute(statement)


def downgrade():
    if op.get_bind().dialect.name == 'postgresql':
        for statement in drop_trigger_ddl():
            op.execute(statement)
    op.drop_index('ix_ledger_day_sums_day', table_name='ledger_day_sums')
    op.drop_table('ledger_day_sums')
