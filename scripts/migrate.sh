#!/usr/bin/env bash
# Creates or upgrades the project's tables in DATABASE_URL's database (default: var/assistant.db).
# Idempotent: Alembic does nothing when the database is at the latest revision.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p var
.venv/bin/alembic upgrade head
