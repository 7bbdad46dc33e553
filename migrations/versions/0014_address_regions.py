"""Addresses keep their province, city, district and street apart, and orders copy them

Revision ID: 0014
Revises: 0012
Create Date: 2026-12-05 01:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0012'
branch_labels = None
depends_on = None

PARTS = (('province', 32), ('city', 32), ('district', 32), ('detail', 200))


def upgrade() -> None:
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        for name, length in PARTS:
            batch_op.add_column(sa.Column(name, sa.String(length=length), server_default='', nullable=False))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for name, length in PARTS:
            batch_op.add_column(
                sa.Column(f'address_{name}', sa.String(length=length), server_default='', nullable=False)
            )


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        for name, _ in reversed(PARTS):
            batch_op.drop_column(f'address_{name}')
    with op.batch_alter_table('addresses', schema=None) as batch_op:
        for name, _ in reversed(PARTS):
            batch_op.drop_column(name)
