"""leaner indexes for imports: event's coupon index holds only events with a coupon; orders'
person index goes (ix_orders_person_paid starts with person_id and serves the same lookups)

Measured at 1 M rows on PostgreSQL (fsync on): `import --no-tags` median 59.5 s → 56.2 s.
More than half of the events carry no coupon code; every lookup by code is an equality (or a
join on equal codes), which implies the code is not NULL, so PostgreSQL and SQLite both use
the partial index for it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-24 17:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_HAS_COUPON = sa.text("coupon_code IS NOT NULL")


def upgrade() -> None:
    op.drop_index('ix_event_coupon_code', table_name='event')
    op.create_index('ix_event_coupon_code', 'event', ['coupon_code', 'type'],
                    postgresql_where=_HAS_COUPON, sqlite_where=_HAS_COUPON)
    op.drop_index('ix_orders_person_id', table_name='orders')


def downgrade() -> None:
    op.create_index('ix_orders_person_id', 'orders', ['person_id'])
    op.drop_index('ix_event_coupon_code', table_name='event')
    op.create_index('ix_event_coupon_code', 'event', ['coupon_code', 'type'])
