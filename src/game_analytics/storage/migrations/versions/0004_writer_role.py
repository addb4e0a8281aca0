"""The insert-only role the workers and the CLI write through: ``game_analytics_writer``.

The role (NOLOGIN: grant it to the workers' login roles) may read and write every table of the schema, but on
``audit_log`` only INSERT and SELECT: UPDATE, DELETE and TRUNCATE are revoked.  The tables, the append-only
trigger and its function stay owned by the role running the migrations, which the workers do not hold, so a
worker cannot disable the trigger either (``ALTER TABLE`` needs ownership).  Default privileges give tables and
sequences created by later migrations the same grants.

The role is cluster-wide: created once if missing (skipped with a NOTICE when the migrating role may not create
roles - create it, then rerun ``upgrade``), granted in every migrated database.  The downgrade revokes this
database's grants and drops the role unless another database still grants it something.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 05:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Name of the role (also in docs/interventions.md and the tests).
WRITER_ROLE = "game_analytics_writer"

UPGRADE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
        BEGIN
            CREATE ROLE {WRITER_ROLE} NOLOGIN;
        EXCEPTION WHEN insufficient_privilege THEN
            RAISE NOTICE 'cannot create role {WRITER_ROLE}: create it and rerun the migration to grant it';
            RETURN;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO {WRITER_ROLE}', current_database());
    GRANT USAGE ON SCHEMA public TO {WRITER_ROLE};
    GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {WRITER_ROLE};
    GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {WRITER_ROLE};
    REVOKE ALL ON alembic_version FROM {WRITER_ROLE};
    GRANT SELECT ON alembic_version TO {WRITER_ROLE};
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM {WRITER_ROLE};
    REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {WRITER_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {WRITER_ROLE};
END
$$
"""

DOWNGRADE = f"""
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
        RETURN;
    END IF;
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM {WRITER_ROLE};
    ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON SEQUENCES FROM {WRITER_ROLE};
    REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {WRITER_ROLE};
    REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {WRITER_ROLE};
    REVOKE USAGE ON SCHEMA public FROM {WRITER_ROLE};
    EXECUTE format('REVOKE CONNECT, TEMPORARY ON DATABASE %I FROM {WRITER_ROLE}', current_database());
    BEGIN
        DROP ROLE {WRITER_ROLE};
    EXCEPTION WHEN dependent_objects_still_exist OR insufficient_privilege OR object_in_use THEN
        RAISE NOTICE 'role {WRITER_ROLE} kept: still used elsewhere';
    END;
END
$$
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
