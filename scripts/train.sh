#!/usr/bin/env bash
# Trains models/assistant.tar.gz only when the training data, domain or config changed since the
# last training (their hash is stamped beside the model), so `make run` starts at once otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=models/assistant.tar.gz
STAMP=models/.assistant.sha256
want_hash=$( { find data -type f | LC_ALL=C sort | xargs sha256sum; sha256sum config.yml domain.yml understanding/*.py core/privacy.py; } \
  | sha256sum | cut -d' ' -f1)

if [ -f "$MODEL" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ]; then
  exit 0
fi

echo "train: training data or config changed; training $MODEL"
start=$(date +%s)
.venv/bin/rasa train --fixed-model-name assistant --out models --quiet
echo "$want_hash" > "$STAMP"
echo "train: done in $(( $(date +%s) - start )) s ($(du -h "$MODEL" | cut -f1))"
