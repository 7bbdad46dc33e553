"""members: a phone confirmed by SMS code, the codes' hashes, staff's member levels; total spent and level on customers, the level's discount on orders

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 03:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=11), nullable=False),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_members_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('customer_id', name=op.f('uq_members_customer_id')),
    sa.UniqueConstraint('phone', name=op.f('uq_members_phone'))
    )
    op.create_table('sms_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('phone', sa.String(length=11), nullable=False),
    sa.Column('salt', sa.String(length=32), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tries', sa.Integer(), server_default='0', nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customers.id'], name=op.f('fk_sms_codes_customer_id_customers'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sms_codes'))
    )
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.create_index('ix_sms_codes_customer_sent', ['customer_id', 'sent_at'], unique=False)
        batch_op.create_index('ix_sms_codes_phone_sent', ['phone', 'sent_at'], unique=False)
    op.create_table('member_levels',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=16), nullable=False),
    sa.Column('threshold_fen', sa.BigInteger(), nullable=False),
    sa.Column('discount_bp', sa.Integer(), nullable=False),
    sa.CheckConstraint('discount_bp >= 0 AND discount_bp <= 5000', name=op.f('ck_member_levels_discount_in_range')),
    sa.CheckConstraint('threshold_fen >= 0', name=op.f('ck_member_levels_threshold_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_levels')),
    sa.UniqueConstraint('name', name=op.f('uq_member_levels_name'))
    )
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.add_column(sa.Column('total_spent_fen', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('member_level', sa.String(length=16), server_default='', nullable=False))
        batch_op.add_column(sa.Column('member_discount_bp', sa.Integer(), server_default='0', nullable=False))
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.add_column(sa.Column('level_discount_fen', sa.BigInteger(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('member_level', sa.String(length=16), server_default='', nullable=False))
    # what customers spent so far (paid minus refunded) counts towards their level once they join
    op.execute(
        "UPDATE customers SET total_spent_fen = COALESCE((SELECT SUM(o.paid_fen - o.refunded_fen) FROM orders o"
        " WHERE o.customer_id = customers.id AND o.paid_fen > 0), 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_column('member_level')
        batch_op.drop_column('level_discount_fen')
    with op.batch_alter_table('customers', schema=None) as batch_op:
        batch_op.drop_column('member_discount_bp')
        batch_op.drop_column('member_level')
        batch_op.drop_column('total_spent_fen')
    op.drop_table('member_levels')
    with op.batch_alter_table('sms_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_sms_codes_phone_sent')
        batch_op.drop_index('ix_sms_codes_customer_sent')
    op.drop_table('sms_codes')
    op.drop_table('members')
