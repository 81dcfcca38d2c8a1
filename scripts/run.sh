#!/usr/bin/env bash
# Starts the action server, the staff console and the Rasa server (REST, socket.io, WeChat, WeCom,
# the help page), waits until the Rasa server answers, prints where to chat, and stops them all on
# Ctrl-C or when any of them exits, saying which one and where its log is.
set -euo pipefail
cd "$(dirname "$0")/.."

RASA_PORT="${RASA_PORT:-5005}"
ACTION_PORT=5055  # endpoints.yml points the Rasa server here
# Both servers listen on loopback unless told otherwise: WeChat and browsers reach the Rasa server
# through a reverse proxy with TLS (docs/operations.md), and only the Rasa server calls the action server.
RASA_HOST="${RASA_HOST:-127.0.0.1}"
# The staff console is for the support team only: its own port, on loopback unless told otherwise.
STAFF_PORT="${STAFF_PORT:-5006}" STAFF_HOST="${STAFF_HOST:-127.0.0.1}"
export ACTION_SERVER_HOST="${ACTION_SERVER_HOST:-127.0.0.1}" ACTION_SERVER_TOKEN="${ACTION_SERVER_TOKEN:-}"
mkdir -p var logs
# Live takeover: the console signs its calls to the Rasa server with this (channels/takeover_endpoint.py).
# A random one for this start unless set (several servers or hosts: set the same one everywhere).
export TAKEOVER_SECRET="${TAKEOVER_SECRET:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
# The model: every Rasa worker pulls the one the console serves (promote and roll back in the
# console, no restart: runtime/model_pulling.py), with a key random for this start unless set.
export MODEL_SERVER_URL="${MODEL_SERVER_URL:-http://127.0.0.1:${STAFF_PORT}/models/current}"
export MODEL_SERVER_TOKEN="${MODEL_SERVER_TOKEN:-$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')}"
# The widgets' session tokens (core/session_tokens.py): kept in var/ so that a restart does not
# start every open widget's conversation anew.
if [ -z "${SESSION_SECRET:-}" ]; then
  if [ ! -s var/session_secret ]; then
    (umask 077 && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >var/session_secret)
  fi
  SESSION_SECRET="$(cat var/session_secret)"
fi
export SESSION_SECRET

# Channels configured from the environment (credentials.yml); unset means "not configured".
export WECHAT_TOKEN="${WECHAT_TOKEN:-}" WECHAT_APPID="${WECHAT_APPID:-}" \
  WECHAT_APPSECRET="${WECHAT_APPSECRET:-}" WECHAT_AES_KEY="${WECHAT_AES_KEY:-}" \
  WECOM_TOKEN="${WECOM_TOKEN:-}" WECOM_AES_KEY="${WECOM_AES_KEY:-}" \
  WECOM_CORP_ID="${WECOM_CORP_ID:-}" WECOM_SECRET="${WECOM_SECRET:-}" \
  WECOM_AGENT_ID="${WECOM_AGENT_ID:-}"

# Web pages (origins, comma-separated) that may talk to the assistant from a browser: Sanic's CORS
# for REST, and the socket.io channel's own check (channels/socketio.py). Its own help page
# is always allowed.
export CORS_ORIGINS="${CORS_ORIGINS:-http://localhost:${RASA_PORT}}"
IFS=',' read -ra cors_origins <<<"$CORS_ORIGINS"

# The project's tables (tickets, unanswered questions, feedback) in DATABASE_URL's database.
scripts/migrate.sh

# Every core: one Rasa worker process per core, as many as the memory holds (Rasa's own
# SANIC_WORKERS; set it to choose). The workers share the port, and what they must see alike
# (whose turn it is, duplicate messages, an agent's words) goes through Redis when REDIS_URL is
# set, through the database otherwise (core/settings.py: shared_between_processes).
export SANIC_WORKERS="${SANIC_WORKERS:-$(.venv/bin/python -c 'from core.settings import default_workers; print(default_workers())')}"

# The Rasa server's supervisor replaces a worker that exits or hangs (runtime/workers.py) and says
# how many serve on loopback: curl http://127.0.0.1:${WORKERS_STATUS_PORT}/ready
export WORKERS_STATUS_PORT="${WORKERS_STATUS_PORT:-5007}"

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # A server that has not stopped 30 s after SIGTERM is killed: stopping must not hang.
  for _ in $(seq 60); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.5
  done
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null && { echo "run: killing pid $pid, still running 30 s after SIGTERM" >&2; kill -9 "$pid"; }
  done
  wait "${pids[@]}" 2>/dev/null || true
}
interrupted=0
trap 'interrupted=1' INT TERM
trap stop EXIT

declare -A names  # pid -> "the action server (logs/actions.log)", …
.venv/bin/python -m runtime.action_server --port "$ACTION_PORT" >logs/actions.log 2>&1 &
pids+=($!); names[$!]="the action server (logs/actions.log)"
probe="http://${RASA_HOST}:${RASA_PORT}"
case "$RASA_HOST" in 0.0.0.0|::) probe="http://127.0.0.1:${RASA_PORT}" ;; esac
ASSISTANT_URL="${ASSISTANT_URL:-$probe}" \
  .venv/bin/python -m staff console --host "$STAFF_HOST" --port "$STAFF_PORT" >logs/staff.log 2>&1 &
pids+=($!); names[$!]="the staff console (logs/staff.log)"
.venv/bin/python -m runtime.rasa_server run --model models/assistant.tar.gz --interface "$RASA_HOST" --port "$RASA_PORT" \
  --credentials credentials.yml --endpoints endpoints.yml \
  --cors "${cors_origins[@]}" >logs/rasa.log 2>&1 &
pids+=($!); names[$!]="the Rasa server (logs/rasa.log)"

echo "run: starting the action server (port $ACTION_PORT), the staff console (port $STAFF_PORT)"
echo "run: and the Rasa server (port $RASA_PORT, $SANIC_WORKERS worker processes); logs in"
echo "run: logs/actions.log, staff.log, rasa.log"
deadline=$(( $(date +%s) + 180 ))
until curl -fsS "${probe}/status" >/dev/null 2>&1 || curl -fsS "${probe}/" >/dev/null 2>&1; do
  for pid in "${pids[@]}"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run: ${names[$pid]} stopped while starting; the end of the logs:" >&2
      tail -n 20 logs/rasa.log logs/actions.log logs/staff.log >&2
      exit 1
    fi
  done
  if [ "$interrupted" = 1 ]; then echo "run: stopped"; exit 0; fi
  if [ "$(date +%s)" -gt "$deadline" ]; then echo "run: timed out waiting for Rasa" >&2; exit 1; fi
  sleep 1
done

# Say here, not only in the log, when a worker was replaced (tail ends with this script).
tail --pid=$$ -n +1 -F logs/rasa.log 2>/dev/null \
  | grep --line-buffered -E 'runtime\.workers +- Worker .*(replaced|stopping the server)' \
  | sed -u 's/^.*runtime\.workers *- /run: /' &

# an id nobody else uses: a REST conversation is anyone's who names it (docs/security.md)
example_sender="try-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n' | tr 0-9 g-p)"
cat <<MSG

  The assistant is running.
    help page: http://localhost:${RASA_PORT}/webhooks/help/   (chat widget; embed: docs/channels.md)
    REST:      curl -s -XPOST http://localhost:${RASA_PORT}/webhooks/rest/webhook \\
                 -H 'Content-Type: application/json' -d '{"sender":"${example_sender}","message":"忘记密码了"}'
    workers:   curl http://127.0.0.1:${WORKERS_STATUS_PORT}/ready   (how many serve)
    socket.io: http://localhost:${RASA_PORT}/socket.io  (events user_uttered / bot_uttered;
                 any client's default options, e.g. rasa-webchat: docs/channels.md)
    terminal:  make shell   (in another terminal)
    staff console: http://localhost:${STAFF_PORT}/   (support team; create an account first:
                 .venv/bin/python -m staff users add NAME --role admin)
    models:    http://localhost:${STAFF_PORT}/admin/models   (train, check, promote, roll back)
  Ctrl-C stops all three servers.

MSG
# Return as soon as any server exits, so that a crash does not leave the others running.
wait -n "${pids[@]}" || true
if [ "$interrupted" = 1 ]; then echo "run: stopped the servers"; exit 0; fi
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || echo "run: ${names[$pid]} stopped; stopping the others." >&2
done
echo "run: the end of the logs:" >&2
tail -n 20 logs/rasa.log logs/actions.log logs/staff.log >&2
exit 1
