#!/usr/bin/env bash
# The Unity client's engine-independent core, built and run outside Unity (Mono + the system libzmq).
#
#   bridge/unity/ci/run_conformance.sh install     apt packages: mono-mcs (mcs; pulls mono-runtime and the
#                                                  System / System.Core assemblies) and libzmq5 (libzmq.so.5)
#   bridge/unity/ci/run_conformance.sh build DIR   compile StreamVideo.Core.dll, unit.exe and conformance.exe into DIR
#                                                  (and parse the Unity-only sources)
#   bridge/unity/ci/run_conformance.sh             install, then pytest tests/bridge/test_unity_client.py, which builds
#                                                  both programs and runs them against a live `streamvideo serve`
set -euo pipefail

UNITY_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REPO_DIR=$(cd "$UNITY_DIR/../.." && pwd)

have_tools() {
    command -v mcs >/dev/null && command -v mono >/dev/null &&
        { ldconfig -p 2>/dev/null || /sbin/ldconfig -p; } | grep -q 'libzmq\.so\.5 '
}

install() {
    if have_tools; then
        return 0
    fi
    local sudo=""
    if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends mono-mcs mono-runtime libzmq5 >/dev/null
    have_tools || { echo "mcs, mono or libzmq.so.5 still missing after apt-get install" >&2; exit 1; }
}

build() {
    local out=$1
    mkdir -p "$out"
    cd "$UNITY_DIR"
    local flags=(-nologo -warn:4 -warnaserror+ -debug- -optimize+)
    # What Unity compiles (StreamVideo.Core.asmdef): no UnityEngine, no NetMQ.
    mcs "${flags[@]}" -target:library -out:"$out/StreamVideo.Core.dll" -recurse:'Runtime/Core/*.cs'
    mcs "${flags[@]}" -target:exe -out:"$out/unit.exe" -r:"$out/StreamVideo.Core.dll" \
        'Tests~/Shared/CheckRunner.cs' -recurse:'Tests~/Unit/*.cs'
    mcs "${flags[@]}" -target:exe -out:"$out/conformance.exe" -r:"$out/StreamVideo.Core.dll" \
        'Tests~/Shared/CheckRunner.cs' -recurse:'Tests~/LibZmq/*.cs' -recurse:'Tests~/Conformance/*.cs'
    # Unity-only sources need UnityEngine / NetMQ to compile; outside Unity only their syntax is checked.
    mcs --parse Runtime/Unity/*.cs Runtime/NetMQ/*.cs Samples~/*/*.cs
}

case "${1:-all}" in
    install) install ;;
    build) build "${2:?usage: run_conformance.sh build DIR}" ;;
    all)
        install
        cd "$REPO_DIR"
        python -m pytest -q tests/bridge/test_unity_client.py
        ;;
    *) echo "usage: $0 [install | build DIR]" >&2; exit 2 ;;
esac
