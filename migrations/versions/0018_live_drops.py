"""live drops (直播): the sessions, the products pushed in them (flash sales), who opted in

Revision ID: 0018
Revises: 0015
Create Date: 2026-12-05 01:25:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('live_sessions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=64), nullable=False),
    sa.Column('video_url', sa.String(length=512), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('sale_id', sa.Integer(), nullable=True),
    sa.Column('viewers', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('audience', sa.Integer(), nullable=False),
    sa.Column('started_by', sa.String(length=64), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint('viewers >= 0 AND clicks >= 0', name=op.f('ck_live_sessions_live_counts_not_negative')),
    sa.ForeignKeyConstraint(['sale_id'], ['flash_sales.id'], name=op.f('fk_live_sessions_sale_id_flash_sales')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_sessions'))
    )
    with op.batch_alter_table('live_sessions', schema=None) as batch_op:
        batch_op.create_index('uq_live_sessions_one_open', ['status'], unique=True,
                              sqlite_where=sa.text("status = 'open'"), postgresql_where=sa.text("status = 'open'"))

    op.create_table('live_pushes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=False),
    sa.Column('sale_id', sa.Integer(), nullable=False),
    sa.Column('pushed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['sale_id'], ['flash_sales.id'], name=op.f('fk_live_pushes_sale_id_flash_sales')),
    sa.ForeignKeyConstraint(['session_id'], ['live_sessions.id'], name=op.f('fk_live_pushes_session_id_live_sessions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_pushes')),
    sa.UniqueConstraint('sale_id', name=op.f('uq_live_pushes_sale_id'))
    )
    with op.batch_alter_table('live_pushes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_live_pushes_session_id'), ['session_id'], unique=False)

    op.create_table('live_subscribers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_live_subscribers_customer_id_customers'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_live_subscribers')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_live_subscribers_customer_id'))
    )


def downgrade() -> None:
    op.drop_table('live_subscribers')
    with op.batch_alter_table('live_pushes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_live_pushes_session_id'))

    op.drop_table('live_pushes')
    with op.batch_alter_table('live_sessions', schema=None) as batch_op:
        batch_op.drop_index('uq_live_sessions_one_open')

    op.drop_table('live_sessions')
