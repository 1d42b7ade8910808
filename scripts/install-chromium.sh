#!/usr/bin/env bash
# Install Debian's Chromium (headless-capable) for the browser tests (tests/serving/test_dashboard.py,
# tests/analysis/test_plotting.py). No system font is needed: tsops ships its Hangul font (NanumGothic from
# the koreanize-matplotlib wheel) and the tests run Chromium on a font configuration without CJK fonts.
# Idempotent: prints what is there and exits 0 when Chromium is already installed.
set -euo pipefail

bin=/usr/bin/chromium
if [[ -x $bin ]]; then
  echo "chromium already installed: $("$bin" --version 2>/dev/null | head -n1)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: apt-get not found; install chromium with your package manager ($bin must exist)" >&2
  exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: installing chromium needs root (run as root or install sudo)" >&2
    exit 1
  fi
fi
echo "installing chromium ..."
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium
echo "installed: $("$bin" --version 2>/dev/null | head -n1)"
