#!/usr/bin/env bash
# Installs the Debian packages reportgen needs when they are missing:
# LibreOffice Writer (DOCX → PDF) and a faster memory allocator for it (tcmalloc), Noto CJK
# fonts (Simplified Chinese), poppler (PDF tools), and Python's venv module; with --test also
# Chromium and its driver (the browser tests of reportgen serve). Does nothing when everything
# is already there.
set -euo pipefail

packages=(libreoffice-writer-nogui libtcmalloc-minimal4 fonts-noto-cjk fonts-hanazono poppler-utils)
if [ "${1:-}" = "--test" ]; then
  packages+=(chromium chromium-driver)
fi
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "缺少系统软件包：${missing[*]}" >&2
  echo "请以 root 身份运行：apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "安装系统软件包：${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
