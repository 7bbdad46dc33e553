"""product_images: a thumbnail for cards, where the picture came from, the original's key

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('product_images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thumb_url', sa.String(length=500), server_default='', nullable=False))
        batch_op.add_column(sa.Column('source', sa.String(length=16), server_default='external', nullable=False))
        batch_op.add_column(sa.Column('original_key', sa.String(length=100), server_default='', nullable=False))
    # the demo's one placeholder per category (/static/demo/*.png) was drawn, not sent by staff
    op.execute("UPDATE product_images SET source = 'generated' WHERE url LIKE '/static/demo/%'")


def downgrade() -> None:
    with op.batch_alter_table('product_images', schema=None) as batch_op:
        batch_op.drop_column('original_key')
        batch_op.drop_column('source')
        batch_op.drop_column('thumb_url')
