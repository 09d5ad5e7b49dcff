#!/usr/bin/env bash
# The whole test suite of sip-lb: what README.md calls "run the tests", and what CI runs.
#
# Installs what the end-to-end tests need when it is missing (Debian/Ubuntu packages:
# sip-tester for `sipp`, tshark, socat, chromium), then runs every
# unit, property, integration, end-to-end and doc test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v sipp >/dev/null 2>&1 || need_pkgs+=(sip-tester)
command -v tshark >/dev/null 2>&1 || need_pkgs+=(tshark)
command -v socat >/dev/null 2>&1 || need_pkgs+=(socat)
# The admin status page is checked in headless Chromium.
{ command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; } || need_pkgs+=(chromium)


if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "test.sh: installing missing packages: ${need_pkgs[*]}" >&2
  if [ "$(id -u)" -eq 0 ]; then sudo=(); elif command -v sudo >/dev/null 2>&1; then sudo=(sudo); else
    echo "test.sh: need root (or sudo) to apt-get install ${need_pkgs[*]}; install them and re-run" >&2
    exit 1
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "test.sh: no apt-get on this machine; install ${need_pkgs[*]} (sipp >= 3.6, tshark) by hand" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  echo "wireshark-common wireshark-common/install-setuid boolean false" | "${sudo[@]}" debconf-set-selections || true
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null || {
    echo "test.sh: apt-get install ${need_pkgs[*]} failed; install them by hand and re-run" >&2
    exit 1
  }
fi

cargo test --workspace "$@"
