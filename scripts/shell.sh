#!/usr/bin/env bash
# Chats with the assistant in this terminal; the action server runs in the background meanwhile.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p logs var
scripts/migrate.sh
export ACTION_SERVER_TOKEN="${ACTION_SERVER_TOKEN:-}"
.venv/bin/python -m runtime.action_server --port 5055 >logs/actions.log 2>&1 &
actions=$!
trap 'kill $actions 2>/dev/null || true' EXIT
.venv/bin/python -m runtime.rasa_server shell --model models/assistant.tar.gz --endpoints endpoints.yml
