#!/usr/bin/env bash
# WhisperLive (collabora/WhisperLive), a third-party server the remote backend is tested against.
# Its package pins faster-whisper 1.2.0 and pulls CUDA and OpenVINO wheels, but its faster-whisper
# server runs on what asr_lab already installs: so it goes into a venv of its own, on top of the
# system site-packages, without its dependencies (nothing installed outside the venv changes).
# Prints the venv's python.
set -euo pipefail
dir="${ASR_LAB_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/asr_lab}/whisper-live-0.10.0"
if ! "$dir/bin/python" -c "import whisper_live.server" >/dev/null 2>&1; then
  python -m venv --system-site-packages "$dir"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$dir/bin/python" -m pip install -q --no-deps whisper-live==0.10.0 >&2
fi
echo "$dir/bin/python"
