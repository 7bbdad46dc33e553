"""products.updated_at indexed: each worker polls for the products other workers edited

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 22:30:00.000000
"""

from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_products_updated_at'), ['updated_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('products', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_products_updated_at'))
