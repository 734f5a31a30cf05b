"""chat commands: saved segments, conversation state, command readings

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 04:10:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('saved_segment',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tree', sa.Text(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('reading', sa.Text(), nullable=False),
    sa.Column('owner', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('saved_segment', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_saved_segment_owner'), ['owner'], unique=False)

    op.create_table('chat_state',
    sa.Column('userid', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('last_segment', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('pending', sa.Text(), nullable=True),
    sa.Column('pending_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('userid')
    )
    with op.batch_alter_table('command_log', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reading', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('result_size', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('command_log', schema=None) as batch_op:
        batch_op.drop_column('result_size')
        batch_op.drop_column('reading')
    op.drop_table('chat_state')
    with op.batch_alter_table('saved_segment', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_saved_segment_owner'))
    op.drop_table('saved_segment')
