"""flash sales (秒杀): the sales, the units customers took, and who asked to be reminded

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05 00:47:36.830415
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flash_sales',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('variant_id', sa.Integer(), nullable=False),
    sa.Column('price_fen', sa.BigInteger(), nullable=False),
    sa.Column('units', sa.Integer(), nullable=False),
    sa.Column('held', sa.Integer(), nullable=False),
    sa.Column('sold', sa.Integer(), nullable=False),
    sa.Column('per_user_limit', sa.Integer(), nullable=False),
    sa.Column('pay_minutes', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('held >= 0 AND sold >= 0 AND sold + held <= units', name=op.f('ck_flash_sales_flash_units_within')),
    sa.CheckConstraint('pay_minutes > 0', name=op.f('ck_flash_sales_flash_pay_minutes_positive')),
    sa.CheckConstraint('per_user_limit > 0', name=op.f('ck_flash_sales_flash_limit_positive')),
    sa.CheckConstraint('price_fen > 0', name=op.f('ck_flash_sales_flash_price_positive')),
    sa.CheckConstraint('units > 0', name=op.f('ck_flash_sales_flash_units_positive')),
    sa.ForeignKeyConstraint(['product_id'], ['products.id'], name=op.f('fk_flash_sales_product_id_products')),
    sa.ForeignKeyConstraint(['variant_id'], ['variants.id'], name=op.f('fk_flash_sales_variant_id_variants')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flash_sales'))
    )
    with op.batch_alter_table('flash_sales', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flash_sales_product_id'), ['product_id'], unique=False)
        batch_op.create_index('ix_flash_sales_status_starts_at', ['status', 'starts_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_flash_sales_variant_id'), ['variant_id'], unique=False)

    op.create_table('flash_reminders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sale_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_flash_reminders_customer_id_customers')),
    sa.ForeignKeyConstraint(['sale_id'], ['flash_sales.id'], name=op.f('fk_flash_reminders_sale_id_flash_sales')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flash_reminders')),
    sa.UniqueConstraint('sale_id', 'customer_id', name=op.f('uq_flash_reminders_sale_id'))
    )
    with op.batch_alter_table('flash_reminders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flash_reminders_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_flash_reminders_sale_id'), ['sale_id'], unique=False)

    op.create_table('flash_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sale_id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_flash_claims_customer_id_customers')),
    sa.ForeignKeyConstraint(['order_id'], ['orders.id'], name=op.f('fk_flash_claims_order_id_orders')),
    sa.ForeignKeyConstraint(['sale_id'], ['flash_sales.id'], name=op.f('fk_flash_claims_sale_id_flash_sales')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flash_claims')),
    sa.UniqueConstraint('order_id', name=op.f('uq_flash_claims_order_id'))
    )
    with op.batch_alter_table('flash_claims', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flash_claims_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index('ix_flash_claims_sale_customer', ['sale_id', 'customer_id'], unique=False)
        batch_op.create_index('ix_flash_claims_status_expires_at', ['status', 'expires_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('flash_claims', schema=None) as batch_op:
        batch_op.drop_index('ix_flash_claims_status_expires_at')
        batch_op.drop_index('ix_flash_claims_sale_customer')
        batch_op.drop_index(batch_op.f('ix_flash_claims_customer_id'))

    op.drop_table('flash_claims')
    with op.batch_alter_table('flash_reminders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flash_reminders_sale_id'))
        batch_op.drop_index(batch_op.f('ix_flash_reminders_customer_id'))

    op.drop_table('flash_reminders')
    with op.batch_alter_table('flash_sales', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flash_sales_variant_id'))
        batch_op.drop_index('ix_flash_sales_status_starts_at')
        batch_op.drop_index(batch_op.f('ix_flash_sales_product_id'))

    op.drop_table('flash_sales')
