"""service messages: campaign_target.service (no frequency cap, counted for none)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 08:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('campaign_target', schema=None) as batch_op:
        batch_op.add_column(sa.Column('service', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('campaign_target', schema=None) as batch_op:
        batch_op.drop_column('service')
