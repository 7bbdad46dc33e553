"""install secrets and one-time link uses

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 13:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('install_secrets',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('value', sa.String(length=128), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_install_secrets'))
    )
    op.create_table('link_uses',
    sa.Column('link_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('link_id', name=op.f('pk_link_uses'))
    )
    with op.batch_alter_table('link_uses', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_uses_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('link_uses', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_uses_expires_at'))
    op.drop_table('link_uses')
    op.drop_table('install_secrets')
