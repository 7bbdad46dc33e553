"""shop events: what the dashboard counts (searches, cards, carts, orders, shares...), written in batches

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-05 03:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('shop_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('product_id', sa.Integer(), nullable=True),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('referrer_id', sa.Integer(), nullable=True),
    sa.Column('query', sa.String(length=64), nullable=True),
    sa.Column('results', sa.Integer(), nullable=True),
    sa.Column('amount_fen', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_shop_events'))
    )
    with op.batch_alter_table('shop_events', schema=None) as batch_op:
        batch_op.create_index('ix_shop_events_kind_at', ['kind', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_shop_events_at'), ['at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('shop_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_shop_events_at'))
        batch_op.drop_index('ix_shop_events_kind_at')
    op.drop_table('shop_events')
