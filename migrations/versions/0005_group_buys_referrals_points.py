"""group buys referrals commission points badges

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 23:29:35.865911
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer_badges',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('badge', sa.String(length=32), nullable=False),
    sa.Column('awarded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_customer_badges_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_customer_badges')),
    sa.UniqueConstraint('customer_id', 'badge', name=op.f('uq_customer_badges_customer_id'))
    )
    with op.batch_alter_table('customer_badges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_badges_customer_id'), ['customer_id'], unique=False)

    op.create_table('withdrawals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=64), nullable=False),
    sa.Column('transfer_ref', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_fen > 0', name=op.f('ck_withdrawals_amount_positive')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_withdrawals_customer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_withdrawals'))
    )
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_withdrawals_customer_id'), ['customer_id'], unique=False)

    op.create_table('group_campaigns',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('group_price_fen', sa.BigInteger(), nullable=False),
    sa.Column('group_size', sa.Integer(), nullable=False),
    sa.Column('time_limit_minutes', sa.Integer(), nullable=False),
    sa.Column('per_user_limit', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('stock_quota', sa.Integer(), nullable=True),
    sa.Column('quota_used', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('group_price_fen > 0', name=op.f('ck_group_campaigns_group_price_positive')),
    sa.CheckConstraint('group_size >= 2', name=op.f('ck_group_campaigns_group_size_at_least_two')),
    sa.CheckConstraint('per_user_limit > 0', name=op.f('ck_group_campaigns_per_user_limit_positive')),
    sa.CheckConstraint('quota_used >= 0 AND (stock_quota IS NULL OR quota_used <= stock_quota)', name=op.f('ck_group_campaigns_quota_within_limit')),
    sa.CheckConstraint('time_limit_minutes > 0', name=op.f('ck_group_campaigns_time_limit_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_group_campaigns_product_id_products')),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_group_campaigns_variant_id_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_campaigns'))
    )
    with op.batch_alter_table('group_campaigns', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_campaigns_product_id'), ['product_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_campaigns_variant_id'), ['variant_id'], unique=False)

    op.create_table('group_buys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('leader_id', sa.Integer(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('seats_taken', sa.Integer(), nullable=False),
    sa.Column('paid_count', sa.Integer(), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reminded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('close_reason', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('filled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('paid_count >= 0 AND paid_count <= seats_taken', name=op.f('ck_group_buys_paid_within_seats')),
    sa.CheckConstraint('seats_taken >= 0 AND seats_taken <= size', name=op.f('ck_group_buys_seats_within_size')),
    sa.ForeignKeyConstraint(['campaign_id'], ['group_campaigns.id'], name=op.f('fk_group_buys_campaign_id_group_campaigns')),
    sa.ForeignKeyConstraint(['leader_id'], ['customers.id'], name=op.f('fk_group_buys_leader_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_buys')),
    sa.UniqueConstraint('code', name=op.f('uq_group_buys_code'))
    )
    with op.batch_alter_table('group_buys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_buys_campaign_id'), ['campaign_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_buys_leader_id'), ['leader_id'], unique=False)
        batch_op.create_index('ix_group_buys_status_deadline', ['status', 'deadline'], unique=False)

    op.create_table('commissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('referrer_id', sa.Integer(), nullable=False),
    sa.Column('buyer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('base_fen', sa.BigInteger(), nullable=False),
    sa.Column('rate_bp', sa.Integer(), nullable=False),
    sa.Column('amount_fen', sa.BigInteger(), nullable=False),
    sa.Column('reversed_fen', sa.BigInteger(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('available_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('amount_fen >= 0', name=op.f('ck_commissions_amount_not_negative')),
    sa.CheckConstraint('reversed_fen >= 0 AND reversed_fen <= amount_fen', name=op.f('ck_commissions_reversed_within_amount')),
    sa.ForeignKeyConstraint(['buyer_id'], ['customers.id'], name=op.f('fk_commissions_buyer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_commissions_order_id_orders')),
    sa.ForeignKeyConstraint(['referrer_id'], ['customers.id'], name=op.f('fk_commissions_referrer_id_customers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commissions')),
    sa.UniqueConstraint('order_id', name=op.f('uq_commissions_order_id'))
    )
    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commissions_buyer_id'), ['buyer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commissions_referrer_id'), ['referrer_id'], unique=False)

    op.create_table('group_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('is_leader', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_group_members_customer_id_customers')),
    sa.ForeignKeyConstraint(['group_id'], ['group_buys.id'], name=op.f('fk_group_members_group_id_group_buys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_group_members_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_members')),
    sa.UniqueConstraint('group_id', 'customer_id', name=op.f('uq_group_members_group_id')),
    sa.UniqueConstraint('order_id', name=op.f('uq_group_members_order_id'))
    )
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_group_members_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_group_members_group_id'), ['group_id'], unique=False)

    op.create_table('points_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('delta', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_points_ledger_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_points_ledger_order_id_orders')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_ledger')),
    sa.UniqueConstraint('customer_id', 'reason', 'ref', name=op.f('uq_points_ledger_customer_id'))
    )
    with op.batch_alter_table('points_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_ledger_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_ledger_order_id'), ['order_id'], unique=False)

    op.create_table('commission_ledger',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('commission_id', sa.Integer(), nullable=True),
    sa.Column('withdrawal_id', sa.Integer(), nullable=True),
    sa.Column('frozen_delta', sa.BigInteger(), nullable=False),
    sa.Column('available_delta', sa.BigInteger(), nullable=False),
    sa.Column('withdrawing_delta', sa.BigInteger(), nullable=False),
    sa.Column('paid_out_delta', sa.BigInteger(), nullable=False),
    sa.Column('note', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['commission_id'], ['commissions.id'], name=op.f('fk_commission_ledger_commission_id_commissions')),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_commission_ledger_customer_id_customers')),
    sa.ForeignKeyConstraint(['withdrawal_id'], ['withdrawals.id'], name=op.f('fk_commission_ledger_withdrawal_id_withdrawals')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_commission_ledger'))
    )
    with op.batch_alter_table('commission_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_commission_ledger_commission_id'), ['commission_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_ledger_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_commission_ledger_withdrawal_id'), ['withdrawal_id'], unique=False)

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('referral_code', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('referrer_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('referred_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('referral_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('points_balance', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('paid_window_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_customers_referrer_id'), ['referrer_id'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_customers_referral_code'), ['referral_code'])
        batch_op.create_foreign_key(batch_op.f('fk_customers_referrer_id_customers'), 'customers', ['referrer_id'], ['id'])
        batch_op.create_check_constraint('points_not_negative', 'points_balance >= 0')

    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('points_used', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('group_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_orders_group_id'), ['group_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_orders_group_id_group_buys'), 'group_buys', ['group_id'], ['id'])

    # ### end Alembic commands ###


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_orders_group_id_group_buys'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_orders_group_id'))
        batch_op.drop_column('group_id')
        batch_op.drop_column('points_used')

    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_customers_points_not_negative'), type_='check')
        batch_op.drop_constraint(batch_op.f('fk_customers_referrer_id_customers'), type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('uq_customers_referral_code'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_customers_referrer_id'))
        batch_op.drop_column('paid_window_at')
        batch_op.drop_column('points_balance')
        batch_op.drop_column('referral_until')
        batch_op.drop_column('referred_at')
        batch_op.drop_column('referrer_id')
        batch_op.drop_column('referral_code')

    with op.batch_alter_table('commission_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commission_ledger_withdrawal_id'))
        batch_op.drop_index(batch_op.f('ix_commission_ledger_customer_id'))
        batch_op.drop_index(batch_op.f('ix_commission_ledger_commission_id'))

    op.drop_table('commission_ledger')
    with op.batch_alter_table('points_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_ledger_order_id'))
        batch_op.drop_index(batch_op.f('ix_points_ledger_customer_id'))

    op.drop_table('points_ledger')
    with op.batch_alter_table('group_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_members_group_id'))
        batch_op.drop_index(batch_op.f('ix_group_members_customer_id'))

    op.drop_table('group_members')
    with op.batch_alter_table('commissions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_commissions_referrer_id'))
        batch_op.drop_index(batch_op.f('ix_commissions_buyer_id'))

    op.drop_table('commissions')
    with op.batch_alter_table('group_buys', schema=None) as batch_op:
        batch_op.drop_index('ix_group_buys_status_deadline')
        batch_op.drop_index(batch_op.f('ix_group_buys_leader_id'))
        batch_op.drop_index(batch_op.f('ix_group_buys_campaign_id'))

    op.drop_table('group_buys')
    with op.batch_alter_table('group_campaigns', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_group_campaigns_variant_id'))
        batch_op.drop_index(batch_op.f('ix_group_campaigns_product_id'))

    op.drop_table('group_campaigns')
    with op.batch_alter_table('withdrawals', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_withdrawals_customer_id'))

    op.drop_table('withdrawals')
    with op.batch_alter_table('customer_badges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_badges_customer_id'))

    op.drop_table('customer_badges')
    # ### end Alembic commands ###
