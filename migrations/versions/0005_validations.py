"""Validations: a zoo's architectures trained on its dataset, and the report on its signals.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-14 20:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('validations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('owner_id', sa.String(length=32), nullable=False),
    sa.Column('zoo_id', sa.String(length=32), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('report', sa.JSON(), nullable=True),
    sa.Column('plot_path', sa.String(length=512), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_validations_job_id_jobs'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['owner_id'], ['owners.id'], name=op.f('fk_validations_owner_id_owners'),
                            ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['zoo_id'], ['zoos.id'], name=op.f('fk_validations_zoo_id_zoos'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validations'))
    )
    with op.batch_alter_table('validations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_validations_owner_id'), ['owner_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_validations_zoo_id'), ['zoo_id'], unique=False)

    op.create_table('validation_trainings',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('validation_id', sa.String(length=32), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('arch_id', sa.String(length=128), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.String(length=32), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('trained_by_job_id', sa.String(length=32), nullable=True),
    sa.Column('trainer', sa.String(length=200), nullable=True),
    sa.Column('trained_count', sa.Integer(), nullable=False),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_validation_trainings_job_id_jobs'),
                            ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['validation_id'], ['validations.id'],
                            name=op.f('fk_validation_trainings_validation_id_validations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_validation_trainings')),
    sa.UniqueConstraint('validation_id', 'arch_id', 'seed',
                        name=op.f('uq_validation_trainings_validation_id_arch_id_seed'))
    )


def downgrade() -> None:
    op.drop_table('validation_trainings')
    with op.batch_alter_table('validations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_validations_zoo_id'))
        batch_op.drop_index(batch_op.f('ix_validations_owner_id'))

    op.drop_table('validations')
