"""R-7: a refund gives money back without reopening the debt. Invoices keep what payments credited (`paid_cents`)
and count what was given back in `refunded_cents`; a refund that staff mark "the customer still owes this"
(`refunds.still_owed`) lowers the credited amount as before.

Data: every refund recorded before this revision (not failed; failed ones were put back already) had lowered the
invoices of its payment; its amount is credited back to them (latest allocation first, as it was taken) and counted
as refunded, so a refunded invoice is no longer owed. Void invoices are left alone (nothing is owed on them).

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refunded_cents', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('still_owed', sa.Boolean(), nullable=False, server_default=sa.false()))
    _close_reopened_debts(op.get_bind())


def _close_reopened_debts(conn) -> None:
    refunds = conn.execute(sa.text("SELECT payment_id, amount_cents FROM refunds WHERE status != 'failed' "
                                   "ORDER BY id")).all()
    for payment_id, amount in refunds:
        left = amount
        allocations = conn.execute(sa.text(
            "SELECT a.amount_cents, i.id, i.total_cents, i.paid_cents FROM payment_allocations a "
            "JOIN invoices i ON i.id = a.invoice_id WHERE a.payment_id = :p AND i.status NOT IN ('void', 'draft') "
            "ORDER BY a.id DESC"), {"p": payment_id}).all()
        for allocated, invoice_id, total, paid in allocations:
            take = min(left, allocated, max(total - paid, 0))
            if take <= 0:
                continue
            paid += take
            status = 'paid' if paid >= total else ('partially_paid' if paid > 0 else 'open')
            conn.execute(sa.text("UPDATE invoices SET paid_cents = :paid, refunded_cents = refunded_cents + :take, "
                                 "status = :status WHERE id = :id"),
                         {"paid": paid, "take": take, "status": status, "id": invoice_id})
            left -= take
            if left <= 0:
                break


def downgrade():
    conn = op.get_bind()
    # back to the old meaning: a refund lowers what the invoice has been paid
    conn.execute(sa.text("UPDATE invoices SET paid_cents = paid_cents - refunded_cents WHERE refunded_cents > 0"))
    conn.execute(sa.text("UPDATE invoices SET status = CASE WHEN paid_cents <= 0 THEN 'open' "
                         "WHEN paid_cents < total_cents THEN 'partially_paid' ELSE 'paid' END "
                         "WHERE refunded_cents > 0 AND status IN ('paid', 'partially_paid')"))
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('still_owed')
    with op.batch_alter_table('invoices', schema=None) as batch_op:
        batch_op.drop_column('refunded_cents')
