"""Service plans: per-customer prices per frequency, plan bill lines (add-ons), one open charge per plan

Revision ID: 0005
Revises: 0004
"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('plan_payment_lines',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('plan_payment_id', sa.Integer(), nullable=False),
    sa.Column('description', sa.String(length=200), nullable=False),
    sa.Column('amount_cents', sa.Integer(), nullable=False),
    sa.Column('addon_id', sa.Integer(), nullable=True),
    sa.Column('installment', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['addon_id'], ['plan_addons.id'], name=op.f('fk_plan_payment_lines_addon_id_plan_addons'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['plan_payment_id'], ['plan_payments.id'], name=op.f('fk_plan_payment_lines_plan_payment_id_plan_payments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_plan_payment_lines'))
    )
    with op.batch_alter_table('plan_payment_lines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_plan_payment_lines_addon_id'), ['addon_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_plan_payment_lines_plan_payment_id'), ['plan_payment_id'], unique=False)

    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('plan_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('plan_payment_ids', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_charge_attempts_plan_id'), ['plan_id'], unique=False)
        batch_op.create_index('uq_charge_attempts_one_open_plan', ['plan_id'], unique=True, sqlite_where=sa.text("plan_id IS NOT NULL AND status IN ('pending', 'unknown')"), postgresql_where=sa.text("plan_id IS NOT NULL AND status IN ('pending', 'unknown')"))
        batch_op.create_foreign_key(batch_op.f('fk_charge_attempts_plan_id_customer_plans'), 'customer_plans', ['plan_id'], ['id'])

    with op.batch_alter_table('customer_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('description', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('visits_per_year', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('price_monthly_cents', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('price_quarterly_cents', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('price_yearly_cents', sa.Integer(), nullable=True))



def downgrade():
    with op.batch_alter_table('customer_plans', schema=None) as batch_op:
        batch_op.drop_column('price_yearly_cents')
        batch_op.drop_column('price_quarterly_cents')
        batch_op.drop_column('price_monthly_cents')
        batch_op.drop_column('visits_per_year')
        batch_op.drop_column('description')

    with op.batch_alter_table('charge_attempts', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_charge_attempts_plan_id_customer_plans'), type_='foreignkey')
        batch_op.drop_index('uq_charge_attempts_one_open_plan', sqlite_where=sa.text("plan_id IS NOT NULL AND status IN ('pending', 'unknown')"), postgresql_where=sa.text("plan_id IS NOT NULL AND status IN ('pending', 'unknown')"))
        batch_op.drop_index(batch_op.f('ix_charge_attempts_plan_id'))
        batch_op.drop_column('plan_payment_ids')
        batch_op.drop_column('plan_id')

    with op.batch_alter_table('plan_payment_lines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_plan_payment_lines_plan_payment_id'))
        batch_op.drop_index(batch_op.f('ix_plan_payment_lines_addon_id'))

    op.drop_table('plan_payment_lines')
