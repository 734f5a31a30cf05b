"""campaign sending: WeCom mass-send batches (idempotency key before the call, msgid after) and
the claim index of campaign_target

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 05:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    # One row per add_msg_template call, written (status 'pending') BEFORE the call: the batch id
    # is the idempotency key the rows being sent point to (campaign_target.last_error while their
    # outcome is 'sending'); msgid and status 'sent' are written in the same transaction as the
    # rows' outcome. 'sent' batches are polled with get_groupmsg_send_result until 'done'.
    op.create_table('campaign_send',
    sa.Column('batch_id', sa.String(), nullable=False),
    sa.Column('campaign_id', sa.Integer(), nullable=False),
    sa.Column('wave', sa.Integer(), nullable=False),
    sa.Column('guide_id', sa.String(), nullable=False),
    sa.Column('variant', sa.String(), nullable=False),
    sa.Column('persons', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(), nullable=False),  # pending | sent | done | failed | abandoned
    sa.Column('msgid', sa.String(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('next_check_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(), nullable=False, server_default=''),
    sa.PrimaryKeyConstraint('batch_id')
    )
    with op.batch_alter_table('campaign_send', schema=None) as batch_op:
        batch_op.create_index('ix_campaign_send_status', ['status', 'next_check_at'], unique=False)
        batch_op.create_index('ix_campaign_send_guide', ['guide_id', 'created_at'], unique=False)
    # Claims take due rows in (due_at, campaign, wave, guide) order straight from this index, so a
    # guide's rows arrive together and become one add_msg_template call.
    with op.batch_alter_table('campaign_target', schema=None) as batch_op:
        batch_op.create_index(
            'ix_campaign_target_claim', ['outcome', 'due_at', 'campaign_id', 'wave', 'guide_id'], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table('campaign_target', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_target_claim')
    with op.batch_alter_table('campaign_send', schema=None) as batch_op:
        batch_op.drop_index('ix_campaign_send_guide')
        batch_op.drop_index('ix_campaign_send_status')
    op.drop_table('campaign_send')
