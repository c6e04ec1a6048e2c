#!/usr/bin/env bash
# The real browser for the browser tests, driven by Playwright: Debian's Chromium package on Debian; on Ubuntu,
# whose Chromium package is a snap that containers can't run, Playwright's own Chromium build.
# Needs root (or sudo) to install system packages. Run it inside the project's virtual environment.
set -euo pipefail

. /etc/os-release 2>/dev/null || ID=unknown

if command -v chromium >/dev/null 2>&1; then
  echo "Chromium is installed: $(command -v chromium)"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "Chromium is missing. As root, run: apt-get update && apt-get install -y chromium" >&2
  exit 1
fi

if [ "${ID}" = "ubuntu" ]; then
  "${as_root[@]}" "$(command -v python)" -m playwright install-deps chromium
  python -m playwright install chromium
  echo "Playwright's Chromium is installed; the browser tests use it when there is no system Chromium."
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "No apt-get here: install Chromium with your package manager, then set STUDIO_CHROMIUM to its path." >&2
  exit 1
fi

"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
echo "Chromium is installed: $(command -v chromium)"
