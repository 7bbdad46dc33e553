"""dialog states: a customer's open dialog survives Redis restarting empty

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 20:40:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('dialog_states',
    sa.Column('key', sa.String(length=80), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('keep_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_dialog_states'))
    )
    with op.batch_alter_table('dialog_states', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dialog_states_keep_until'), ['keep_until'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('dialog_states', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dialog_states_keep_until'))
    op.drop_table('dialog_states')
