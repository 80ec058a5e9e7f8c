"""Status columns typed: one CHECK constraint per status column, allowing only the values of its enum

The names follow the metadata's convention (ck_<table>_<constraint name>, the enum type being named "status"),
so the models and the migrated schema agree. The values are frozen here: a later change to an enum needs its
own migration.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

STATUSES = {
    'customers': ('lead', 'active', 'inactive', 'archived', 'blacklisted'),
    'estimates': ('draft', 'sent', 'approved', 'declined', 'converted', 'expired'),
    'invoices': ('draft', 'open', 'partially_paid', 'paid', 'void'),
    'jobs': ('scheduled', 'in_progress', 'finished', 'cancelled'),
    'visits': ('scheduled', 'in_progress', 'completed', 'cancelled'),
    'queued_emails': ('queued', 'sending', 'sent', 'failed', 'console'),
    'message_requests': ('new', 'handled'),
    'charge_attempts': ('pending', 'succeeded', 'failed', 'unknown'),
    'payments': ('succeeded', 'partially_refunded', 'refunded'),
    'refunds': ('pending', 'succeeded', 'failed'),
    'customer_plans': ('draft', 'pending', 'active', 'cancelled', 'expired'),
    'plan_payments': ('scheduled', 'paid', 'failed', 'overdue', 'refunded', 'partially_refunded', 'marked_paid',
                      'cancelled'),
    'plan_addons': ('active', 'receivable', 'paid'),
}


def _allowed(values):
    return "status IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade():
    for table, values in STATUSES.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.create_check_constraint(op.f(f'ck_{table}_status'), _allowed(values))


def downgrade():
    for table in reversed(list(STATUSES)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f'ck_{table}_status'), type_='check')
