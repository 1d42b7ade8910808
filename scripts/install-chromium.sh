#!/usr/bin/env bash
# Install Debian's Chromium (headless-capable) for the dashboard browser test (tests/serving/test_dashboard.py),
# plus a Korean font so series ids such as "광 주 A|C02" render in screenshots.
# Idempotent: prints what is there and exits 0 when both are already installed.
set -euo pipefail

bin=/usr/bin/chromium
packages=()
[[ -x $bin ]] || packages+=(chromium)
if ! command -v fc-list >/dev/null || [[ -z $(fc-list :lang=ko 2>/dev/null) ]]; then
  packages+=(fonts-nanum)
fi
if [[ ${#packages[@]} -eq 0 ]]; then
  echo "chromium already installed: $("$bin" --version 2>/dev/null | head -n1)"
  exit 0
fi
if ! command -v apt-get >/dev/null; then
  echo "error: apt-get not found; install ${packages[*]} with your package manager ($bin must exist)" >&2
  exit 1
fi
sudo=""
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null; then sudo="sudo"; else
    echo "error: installing ${packages[*]} needs root (run as root or install sudo)" >&2
    exit 1
  fi
fi
echo "installing ${packages[*]} ..."
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${packages[@]}"
echo "installed: $("$bin" --version 2>/dev/null | head -n1)"
