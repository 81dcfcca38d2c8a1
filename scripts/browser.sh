#!/usr/bin/env bash
# What the browser and deployment tests need besides Python packages: Debian's chromium (Playwright
# drives it; it never downloads a browser of its own) and a font with Chinese glyphs for the
# screenshots, and axe-core from npm for the accessibility checks. Installed when missing (apt as
# root); otherwise says what to install (the browser tests then skip, or fail under CI=true).
# Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

# axe-core, the accessibility checker the browser tests load into the pages (from npm, pinned in
# tests/browser/package-lock.json); installed again only when the lock file changed.
browser_deps=tests/browser
stamp="$browser_deps/node_modules/.installed-lock"
if ! cmp -s "$browser_deps/package-lock.json" "$stamp" 2>/dev/null; then
  if command -v npm >/dev/null 2>&1; then
    echo "browser: installing axe-core (npm ci in $browser_deps)"
    npm ci --prefix "$browser_deps" --no-audit --no-fund --loglevel=error >/dev/null
    cp "$browser_deps/package-lock.json" "$stamp"
  else
    echo "browser: the accessibility test needs Node.js and npm: sudo apt-get install npm" >&2
  fi
fi

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk" || missing+=(fonts-wqy-microhei)
# nginx for the test of the several-server deployment behind it (deploy/nginx)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
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
