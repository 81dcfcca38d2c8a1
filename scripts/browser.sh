#!/usr/bin/env bash
# What the help page's browser test needs besides Python packages: Debian's chromium (Playwright
# drives it; it never downloads a browser of its own) and a font with Chinese glyphs for the
# screenshots. Installed with apt when missing and we are root; otherwise says what to install
# (the browser test then skips, or fails under CI=true). Idempotent.
set -euo pipefail
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-microhei)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "browser: installing ${missing[*]} (apt)"
  if ! apt-get install -y -q "${missing[@]}" >/dev/null 2>&1; then
    apt-get update -q >/dev/null 2>&1
    apt-get install -y -q "${missing[@]}" >/dev/null
  fi
else
  echo "browser: the help page's browser test needs: sudo apt-get install ${missing[*]}" >&2
fi
