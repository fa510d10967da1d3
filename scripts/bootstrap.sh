#!/usr/bin/env bash
# Create .venv (Python >= 3.12, which bokeh 3.10 requires) and install kernelstate
# with every extra. With "test": also Debian's chromium (browser tests) and
# configurable-http-proxy from npm (JupyterHub test), when they are missing and
# the machine can install them. Safe to run again: it only does missing work.
set -euo pipefail
cd "$(dirname "$0")/.."
WANT="${1:-serve}"

find_python() {
  for cand in python3.13 python3.12 python3; do
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$cand"; return
    fi
  done
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.1[2-9]*/bin/python3; do
    if [ -x "$cand" ]; then echo "$cand"; return; fi
  done
  echo "kernelstate needs Python >= 3.12 (bokeh 3.10 requires it); none found on PATH or in pyenv" >&2
  exit 1
}

if [ ! -x .venv/bin/python ]; then
  PY="$(find_python)"
  echo "creating .venv with $PY"
  "$PY" -m venv .venv
fi

STAMP=".venv/.kernelstate-$WANT"
if [ ! -f "$STAMP" ] || [ pyproject.toml -nt "$STAMP" ]; then
  if [ "$WANT" = "test" ]; then EXTRAS="jupyter,test"; else EXTRAS="jupyter"; fi
  .venv/bin/python -m pip install -q -e ".[$EXTRAS]" 2> >(grep -v "is ignored: it is neither" >&2)
  touch "$STAMP"
fi

if [ "$WANT" = "test" ]; then
  if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    if command -v apt-get >/dev/null 2>&1; then
      echo "installing Debian's chromium for the browser tests"
      ($SUDO apt-get install -y -q chromium >/dev/null 2>&1 || ($SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q chromium >/dev/null 2>&1)) \
        || echo "could not install chromium: browser tests will be skipped"
    fi
  fi
  # Redis, HAProxy and nginx for the scale-out tests (started by the tests on 127.0.0.1, never as services)
  MISSING=""
  command -v redis-server >/dev/null 2>&1 || MISSING="$MISSING redis-server"
  command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || MISSING="$MISSING haproxy"
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || MISSING="$MISSING nginx"
  if [ -n "$MISSING" ] && command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo -n"
    echo "installing Debian's$MISSING for the scale-out tests"
    # policy-rc.d 101: the packages must not start system-wide daemons; the tests start their own
    POLICY=/usr/sbin/policy-rc.d; MADE=""
    if [ ! -e "$POLICY" ] && [ -z "$SUDO" ]; then printf '#!/bin/sh\nexit 101\n' > "$POLICY" && chmod +x "$POLICY" && MADE=1; fi
    ($SUDO apt-get install -y -q $MISSING >/dev/null 2>&1 || ($SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q $MISSING >/dev/null 2>&1)) \
      || echo "could not install$MISSING: the tests that need them will be skipped"
    if [ -n "$MADE" ]; then rm -f "$POLICY"; fi
  fi
  if ! command -v configurable-http-proxy >/dev/null 2>&1 && [ ! -x .venv/node/bin/configurable-http-proxy ] && command -v npm >/dev/null 2>&1; then
    echo "installing configurable-http-proxy (npm) for the JupyterHub test"
    npm install -g --prefix .venv/node configurable-http-proxy >/dev/null 2>&1 \
      || echo "could not install configurable-http-proxy: the JupyterHub test will be skipped"
  fi
fi
