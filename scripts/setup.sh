#!/usr/bin/env bash
# Builds .venv with a Python that Rasa 3.6 supports (3.8-3.10) and installs the pinned
# requirements. Idempotent: when requirements*.txt and requirements.lock have not changed since
# the last successful install (their hash is stamped in .venv), it returns in well under a second.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${VENV:-.venv}"  # overridable for tests of this script
STAMP="$VENV/.requirements.sha256"
want_hash=$(cat requirements.txt requirements-nodeps.txt requirements.lock | sha256sum | cut -d' ' -f1)

if [ -x "$VENV/bin/python" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want_hash" ]; then
  exit 0
fi

supported() {  # prints the interpreter's path when it runs and is 3.8, 3.9 or 3.10
  "$1" -c 'import sys; sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 10) else 1)' \
    >/dev/null 2>&1 && command -v "$1"
}

find_python() {
  local candidate
  if [ -n "${PYTHON:-}" ]; then supported "$PYTHON" && return 0; fi
  for candidate in python3.10 python3.9 python3.8; do
    supported "$candidate" && return 0
  done
  # pyenv keeps interpreters out of PATH unless its shims are set up for this shell.
  local root="${PYENV_ROOT:-$HOME/.pyenv}"
  for candidate in $(ls -d "$root"/versions/3.10* "$root"/versions/3.9* "$root"/versions/3.8* \
      2>/dev/null | sort -rV); do
    supported "$candidate/bin/python" && return 0
  done
  return 1
}

if [ -x "$VENV/bin/python" ] && ! supported "$VENV/bin/python" >/dev/null; then
  echo "setup: $VENV was built with an unsupported Python; rebuilding it." >&2
  rm -rf "$VENV"
fi

if [ ! -x "$VENV/bin/python" ]; then
  if ! py=$(find_python); then
    cat >&2 <<'MSG'
setup: no Python 3.8, 3.9 or 3.10 was found, and Rasa Open Source 3.6 runs on nothing newer.
Install one, then run the command again. Any of these works:
  - pyenv:   pyenv install 3.10.13        (found automatically under ~/.pyenv/versions)
  - Debian/Ubuntu: apt-get install python3.10 python3.10-venv   (where the release packages it)
  - or point to one you have: PYTHON=/path/to/python3.10 make run
MSG
    exit 1
  fi
  echo "setup: building $VENV with $py ($("$py" --version 2>&1))"
  "$py" -m venv "$VENV"
fi

echo "setup: installing pinned requirements into $VENV (first run takes a few minutes)"
pip_install() {
  # Some machines configure pip with an index folder that lacks a few packages; pip warns once per
  # package about it. Those lines are noise here, everything else pip says is kept.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | sed '/is ignored: it is neither a file nor a directory/d'
}
pip_install "pip==26.3"  # the same pip everywhere; it then installs the locked versions
pip_install -r requirements.txt -c requirements.lock
pip_install --no-deps -r requirements-nodeps.txt -c requirements.lock
echo "$want_hash" > "$STAMP"
echo "setup: done"
