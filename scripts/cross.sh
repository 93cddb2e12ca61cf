#!/usr/bin/env bash
# Builds vidchat for Windows and type-checks it for macOS, from Debian.
#
# rustup cannot fetch other targets' standard library here, so this uses
# Debian's own Rust (rustc-web, cargo-web: 1.96) with the library's source
# (rust-web-src) and builds std for the target (-Zbuild-std, which needs
# RUSTC_BOOTSTRAP=1 on a stable compiler). As root on Debian it installs what
# it needs first.
#
#   Windows: x86_64-pc-windows-gnu, linked by mingw-w64 with the C and C++
#            runtimes inside (no DLL beside it), openh264's SIMD assembled by
#            nasm: target/x86_64-pc-windows-gnu/release/vidchat.exe. With it,
#            target/wine-shim/bcryptprimitives.dll: Wine 8 has no
#            ProcessPrng, which Rust's std calls for random numbers; the shim
#            forwards it to RtlGenRandom. Only Wine needs it; Windows 10 and
#            later have the DLL.
#   macOS:   `cargo check` for aarch64-apple-darwin and x86_64-apple-darwin,
#            C and C++ compiled by zig (pip's ziglang, cargo-zigbuild), results
#            under target/<target>/; the tests are checked too. Objective-C
#            (minifb's window code) needs Apple's SDK, which is not here:
#            scripts/objc-check-only stands in for it, as a check links
#            nothing.
#
# Usage: scripts/cross.sh [windows|macos]...   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."

DEB_CARGO=/usr/bin/cargo
DEB_RUSTC=/usr/bin/rustc
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    need=()
    "$DEB_RUSTC" --version 2>/dev/null | grep -q '^rustc 1\.\(8[5-9]\|9[0-9]\).*source tarball' || need+=(rustc-web cargo-web)
    [ -d /usr/lib/rustlib/src/rust/library ] || need+=(rust-web-src)
    command -v x86_64-w64-mingw32-g++ >/dev/null || need+=(gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64)
    command -v nasm >/dev/null || need+=(nasm)
    command -v pip3 >/dev/null || need+=(python3-pip)
    if [ ${#need[@]} -gt 0 ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    fi
fi
# Debian's own Rust, new enough for edition 2024 (bookworm's plain rustc
# is 1.63; rustc-web is 1.96).
for tool in "$DEB_CARGO" "$DEB_RUSTC"; do
    minor=$("$tool" --version 2>/dev/null | sed -n 's/^[a-z]* 1\.\([0-9]*\)\..*source tarball.*/\1/p')
    [ "${minor:-0}" -ge 85 ] || {
        echo "cross.sh: $tool is not Debian's Rust 1.85 or newer (apt-get install rustc-web cargo-web rust-web-src)" >&2
        exit 1
    }
done

# Debian's compiler, not rustup's proxies, for everything this script builds.
export RUSTC=$DEB_RUSTC RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
BUILD_STD=(-Zbuild-std=std,panic_abort)

windows() {
    local target=x86_64-pc-windows-gnu
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER=x86_64-w64-mingw32-gcc
    # One file: the C and C++ runtimes, libgcc and winpthread linked in.
    # openh264 is C++, and its build asks for libstdc++ as rustc asks for
    # every system library, DLL first; the linker looks in each folder in
    # turn, so a folder searched first that holds only the static
    # libstdc++.a answers. No debug information: a download, not a build to
    # debug.
    local static=$PWD/target/mingw-static
    mkdir -p "$static"
    ln -sf "$(x86_64-w64-mingw32-g++ -print-file-name=libstdc++.a)" "$static/libstdc++.a"
    export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUSTFLAGS="-C target-feature=+crt-static -C link-arg=-static -L native=$static"
    export CARGO_PROFILE_RELEASE_DEBUG=false
    "$DEB_CARGO" build --release --locked "${BUILD_STD[@]}" --target $target -p vidchat
    local exe=target/$target/release/vidchat.exe
    local dlls
    dlls=$(x86_64-w64-mingw32-objdump -p "$exe" | sed -n 's/^\s*DLL Name: //p' | tr 'A-Z' 'a-z' | sort -u)
    if echo "$dlls" | grep -E 'libstdc|libgcc|libwinpthread'; then
        echo "cross.sh: $exe still needs a MinGW runtime DLL" >&2
        exit 1
    fi
    echo "$exe: needs only $(echo $dlls | tr ' ' ',')"

    mkdir -p target/wine-shim
    x86_64-w64-mingw32-gcc -shared -O2 -o target/wine-shim/bcryptprimitives.dll \
        scripts/wine-shim/bcryptprimitives.c scripts/wine-shim/bcryptprimitives.def -ladvapi32
    echo "target/wine-shim/bcryptprimitives.dll: for Wine only"
}

macos() {
    if ! command -v cargo-zigbuild >/dev/null || ! python3 -c 'import ziglang' 2>/dev/null; then
        pip3 install -q --break-system-packages ziglang cargo-zigbuild 2>/dev/null || pip3 install -q ziglang cargo-zigbuild
    fi
    local target zig_target
    for target in aarch64-apple-darwin x86_64-apple-darwin; do
        zig_target=${target%%-*}-macos-none
        local cc_var=CC_${target//-/_}
        # cargo-zigbuild runs the cargo it finds first: Debian's.
        env PATH="/usr/bin:$PATH" ZIG_TARGET="$zig_target" "$cc_var=$PWD/scripts/objc-check-only" \
            RUSTFLAGS="-D warnings" \
            cargo-zigbuild check --release --locked "${BUILD_STD[@]}" --target $target -p vidchat --all-targets
        echo "$target: vidchat type-checks, tests included"
    done
}

[ $# -gt 0 ] || set -- windows macos
for part in "$@"; do
    case $part in
        windows | macos) "$part" ;;
        *) echo "cross.sh: no such part: $part (windows, macos)" >&2; exit 2 ;;
    esac
done
