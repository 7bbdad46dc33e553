"""shop lexicon: search synonyms and staff FAQ answers

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 18:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('search_synonyms',
    sa.Column('word', sa.String(length=32), nullable=False),
    sa.Column('means', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('word', name=op.f('pk_search_synonyms'))
    )
    op.create_table('faq_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('keyword', sa.String(length=32), nullable=False),
    sa.Column('answer', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_faq_answers')),
    sa.UniqueConstraint('keyword', name=op.f('uq_faq_answers_keyword'))
    )


def downgrade() -> None:
    op.drop_table('faq_answers')
    op.drop_table('search_synonyms')
