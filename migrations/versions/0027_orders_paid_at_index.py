"""orders.paid_at indexed: the dashboard and /stats read the orders paid in a period

Revision ID: 0027
Revises: 0023
Create Date: 2026-12-05 04:00:00
"""

from alembic import op

revision = '0027'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_paid_at'), ['paid_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_paid_at'))
