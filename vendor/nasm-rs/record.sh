#!/usr/bin/env bash
# Assembles the nasm sources of every crate in the build that uses nasm-rs
# (openh264-sys2) once more, with nasm, into FOLDER/<target>/ under the names
# a build without nasm looks for. Needs nasm (apt-get install nasm).
# Usage: vendor/nasm-rs/record.sh FOLDER
set -euo pipefail
[ $# = 1 ] || { echo "usage: $0 FOLDER" >&2; exit 2; }
command -v nasm >/dev/null || { echo "record.sh needs nasm" >&2; exit 1; }
mkdir -p "$1"
folder=$(realpath "$1")
cd "$(dirname "$0")/../.."
build=$(mktemp -d)
trap 'rm -rf "$build"' EXIT
NASM_RS_RECORD=$folder CARGO_TARGET_DIR=$build cargo build --locked -q -p openh264-sys2
