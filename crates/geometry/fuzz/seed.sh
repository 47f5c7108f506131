#!/usr/bin/env bash
# Builds the seed corpus of every fuzz target from ../shared/models (never
# committed: those files must not be shipped). Small files are copied whole;
# larger text files contribute their first 64 KiB, larger binary STLs their
# first 200 triangles with a corrected count.
#
#   crates/geometry/fuzz/seed.sh [MODELS_DIR]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
models="${1:-../../../../shared/models}"
max=262144
for t in stl_binary stl_ascii obj ply threemf analyze; do mkdir -p "corpus/$t"; done

add() { # target file
    local name
    name="$(basename "$2")"
    if [[ $(stat -c %s "$2") -le $max ]]; then
        cp "$2" "corpus/$1/$name"
    elif [[ $1 == stl_binary ]]; then
        python3 - "$2" "corpus/$1/$name.head" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read(84 + 50 * 200)
n = (len(b) - 84) // 50
open(sys.argv[2], "wb").write(b[:80] + struct.pack("<I", n) + b[84:84 + 50 * n])
PY
    elif [[ $1 != threemf ]]; then
        head -c 65536 "$2" > "corpus/$1/$name.head"
    fi
}

shopt -s nullglob
for f in "$models"/*.* "$models"/generated/*.*; do
    case "$f" in
        *.bin.stl) add stl_binary "$f" ;;
        *.ascii.stl) add stl_ascii "$f" ;;
        *.obj) add obj "$f" ;;
        *.ply) add ply "$f" ;;
        *.3mf) add threemf "$f" ;;
        *) continue ;;
    esac
done
for t in stl_binary stl_ascii obj ply threemf; do
    cp corpus/$t/* corpus/analyze/ 2>/dev/null || true
done
for t in stl_binary stl_ascii obj ply threemf analyze; do
    echo "corpus/$t: $(ls corpus/$t | wc -l) files, $(du -sh corpus/$t | cut -f1)"
done
