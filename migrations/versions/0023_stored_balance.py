"""stored balance: accounts and their double-entry ledger, top-up plans and top-ups, order holds,
withdrawals; the balance part of orders and refunds

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-05 03:04:32.516756
"""

import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('topup_plans',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('pay_fen', sa.BigInteger(), nullable=False),
    sa.Column('bonus_fen', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('bonus_fen >= 0', name=op.f('ck_topup_plans_bonus_not_negative')),
    sa.CheckConstraint('pay_fen > 0', name=op.f('ck_topup_plans_pay_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_topup_plans')),
    sa.UniqueConstraint('pay_fen', name=op.f('uq_topup_plans_pay_fen'))
    )
    op.create_table('balance_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('balance_fen', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('funding', 'promotion', 'sales') OR balance_fen >= 0", name=op.f('ck_balance_accounts_customer_side_not_negative')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_balance_accounts_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_accounts')),
    sa.UniqueConstraint('customer_id', 'kind', name=op.f('uq_balance_accounts_customer_id'))
    )
    with op.batch_alter_table('balance_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_accounts_customer_id'), ['customer_id'], unique=False)

    op.create_table('balance_topups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('topup_no', sa.String(length=32), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('pay_fen', sa.BigInteger(), nullable=False),
    sa.Column('bonus_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('provider', sa.String(length=20), nullable=False),
    sa.Column('transaction_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('credited_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('pay_fen > 0', name=op.f('ck_balance_topups_pay_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_balance_topups_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_topups')),
    sa.UniqueConstraint('topup_no', name=op.f('uq_balance_topups_topup_no'))
    )
    with op.batch_alter_table('balance_topups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_topups_customer_id'), ['customer_id'], unique=False)

    op.create_table('balance_withdrawals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('transfer_ref', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_balance_withdrawals_amount_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_balance_withdrawals_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_withdrawals'))
    )
    with op.batch_alter_table('balance_withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_withdrawals_customer_id'), ['customer_id'], unique=False)

    op.create_table('balance_holds',
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('cash_fen', sa.BigInteger(), nullable=False),
    sa.Column('bonus_fen', sa.BigInteger(), nullable=False),
    sa.Column('refunded_cash_fen', sa.BigInteger(), nullable=False),
    sa.Column('refunded_bonus_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('cash_fen >= 0 AND bonus_fen >= 0 AND cash_fen + bonus_fen > 0', name=op.f('ck_balance_holds_amount_positive')),
    sa.CheckConstraint('refunded_cash_fen >= 0 AND refunded_cash_fen <= cash_fen AND refunded_bonus_fen >= 0 AND refunded_bonus_fen <= bonus_fen', name=op.f('ck_balance_holds_refund_within_hold')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_balance_holds_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_balance_holds_order_id_orders')),
    sa.PrimaryKeyConstraint('order_id', name=op.f('pk_balance_holds'))
    )
    with op.batch_alter_table('balance_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_holds_customer_id'), ['customer_id'], unique=False)

    op.create_table('balance_movements',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=16), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('topup_id', sa.Integer(), nullable=True),
    sa.Column('withdrawal_id', sa.Integer(), nullable=True),
    sa.Column('ref', sa.String(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_balance_movements_amount_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_balance_movements_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_balance_movements_order_id_orders')),
    sa.ForeignKeyConstraint(['topup_id'], ['balance_topups.id'], name=op.f('fk_balance_movements_topup_id_balance_topups')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['balance_withdrawals.id'], name=op.f('fk_balance_movements_withdrawal_id_balance_withdrawals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_movements'))
    )
    with op.batch_alter_table('balance_movements', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_movements_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_balance_movements_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_balance_movements_topup_id'), ['topup_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_balance_movements_withdrawal_id'), ['withdrawal_id'], unique=False)

    op.create_table('balance_entries',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('movement_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('amount_fen <> 0', name=op.f('ck_balance_entries_amount_not_zero')),
    sa.ForeignKeyConstraint(['account_id'], ['balance_accounts.id'], name=op.f('fk_balance_entries_account_id_balance_accounts')),
    sa.ForeignKeyConstraint(['movement_id'], ['balance_movements.id'], name=op.f('fk_balance_entries_movement_id_balance_movements')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_balance_entries'))
    )
    with op.batch_alter_table('balance_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_balance_entries_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_balance_entries_movement_id'), ['movement_id'], unique=False)

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('balance_fen', sa.BigInteger(), server_default='0', nullable=False))

    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.add_column(sa.Column('balance_fen', sa.BigInteger(), server_default='0', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_column('balance_fen')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('balance_fen')

    with op.batch_alter_table('balance_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_entries_movement_id'))
        batch_op.drop_index(batch_op.f('ix_balance_entries_account_id'))

    op.drop_table('balance_entries')
    with op.batch_alter_table('balance_movements', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_movements_withdrawal_id'))
        batch_op.drop_index(batch_op.f('ix_balance_movements_topup_id'))
        batch_op.drop_index(batch_op.f('ix_balance_movements_order_id'))
        batch_op.drop_index(batch_op.f('ix_balance_movements_customer_id'))

    op.drop_table('balance_movements')
    with op.batch_alter_table('balance_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_holds_customer_id'))

    op.drop_table('balance_holds')
    with op.batch_alter_table('balance_withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_withdrawals_customer_id'))

    op.drop_table('balance_withdrawals')
    with op.batch_alter_table('balance_topups', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_topups_customer_id'))

    op.drop_table('balance_topups')
    with op.batch_alter_table('balance_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_balance_accounts_customer_id'))

    op.drop_table('balance_accounts')
    op.drop_table('topup_plans')
