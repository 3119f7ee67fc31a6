"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 13:04:15.603425
"""

from alembic import op
import sqlalchemy as sa
import fhir_bridge.store.models


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consent_ledger',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('patient_ref', sa.String(length=200), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('source', sa.String(length=32), nullable=False),
    sa.Column('recorded_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('consent_ledger', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_ledger_address'), ['address'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_ledger_patient_ref'), ['patient_ref'], unique=False)

    op.create_table('inbox_notification',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('subscription_id', sa.String(length=36), nullable=True),
    sa.Column('dedupe_key', sa.String(length=255), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('received_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_until', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('enqueued_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('processed_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('error_code', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dedupe_key')
    )
    with op.batch_alter_table('inbox_notification', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_status', ['status'], unique=False)

    op.create_table('planned_message',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('key', sa.String(length=300), nullable=False),
    sa.Column('rule', sa.String(length=100), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=False),
    sa.Column('patient_ref', sa.String(length=200), nullable=False),
    sa.Column('about', sa.JSON(), nullable=False),
    sa.Column('send_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('template', sa.String(length=200), nullable=False),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('variables', sa.JSON(), nullable=False),
    sa.Column('sensitive', sa.Boolean(), nullable=False),
    sa.Column('trace', sa.JSON(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('lease_until', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=True),
    sa.Column('subject_line', sa.Text(), nullable=True),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('html', sa.Text(), nullable=True),
    sa.Column('consent_used', sa.JSON(), nullable=True),
    sa.Column('provider', sa.String(length=32), nullable=True),
    sa.Column('provider_message_id', sa.String(length=128), nullable=True),
    sa.Column('delivery_status', sa.String(length=32), nullable=True),
    sa.Column('sent_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('reason', sa.String(length=64), nullable=True),
    sa.Column('reason_detail', sa.Text(), nullable=True),
    sa.Column('communication_status', sa.String(length=16), nullable=False),
    sa.Column('communication_id', sa.String(length=128), nullable=True),
    sa.Column('created_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('planned_message', schema=None) as batch_op:
        batch_op.create_index('ix_planned_due', ['status', 'send_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_planned_message_patient_ref'), ['patient_ref'], unique=False)
        batch_op.create_index(batch_op.f('ix_planned_message_provider_message_id'), ['provider_message_id'], unique=False)
        batch_op.create_index('ix_planned_writeback', ['communication_status'], unique=False)

    op.create_table('resource_state',
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('resource_id', sa.String(length=128), nullable=False),
    sa.Column('version_id', sa.String(length=64), nullable=True),
    sa.Column('last_updated', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('patient_ref', sa.String(length=200), nullable=True),
    sa.Column('body', sa.JSON(), nullable=False),
    sa.Column('stored_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('resource_type', 'resource_id')
    )
    with op.batch_alter_table('resource_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_resource_state_patient_ref'), ['patient_ref'], unique=False)

    op.create_table('subscription',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('resource_type', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('payload', sa.String(length=16), nullable=False),
    sa.Column('criteria', sa.Text(), nullable=False),
    sa.Column('remote_id', sa.String(length=128), nullable=True),
    sa.Column('endpoint', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('heartbeat_period', sa.Integer(), nullable=False),
    sa.Column('events_through', sa.Integer(), nullable=False),
    sa.Column('good_through', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_notification_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_heartbeat_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_checked_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=200), nullable=True),
    sa.Column('created_at', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('resource_type', 'kind', name='uq_subscription_type_kind')
    )
    op.create_table('watermark',
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('value', fhir_bridge.store.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )


def downgrade() -> None:
    op.drop_table('watermark')
    op.drop_table('subscription')
    with op.batch_alter_table('resource_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_resource_state_patient_ref'))

    op.drop_table('resource_state')
    with op.batch_alter_table('planned_message', schema=None) as batch_op:
        batch_op.drop_index('ix_planned_writeback')
        batch_op.drop_index(batch_op.f('ix_planned_message_provider_message_id'))
        batch_op.drop_index(batch_op.f('ix_planned_message_patient_ref'))
        batch_op.drop_index('ix_planned_due')

    op.drop_table('planned_message')
    with op.batch_alter_table('inbox_notification', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_status')

    op.drop_table('inbox_notification')
    with op.batch_alter_table('consent_ledger', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_ledger_patient_ref'))
        batch_op.drop_index(batch_op.f('ix_consent_ledger_address'))

    op.drop_table('consent_ledger')
