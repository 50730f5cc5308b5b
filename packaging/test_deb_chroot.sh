#!/usr/bin/env bash
# Install the demo's .deb into a bare Debian chroot and run its --self-test there.
#
#   sudo packaging/test_deb_chroot.sh [PATH.deb]
#
# Proves the package declares everything the bundle needs from the system: the chroot is
# `debootstrap --variant=minbase bookworm` (no X, no GL, no fonts, no Python), apt installs the
# .deb with its Depends only (--no-install-recommends), and the app runs as a desktop user would
# start it: /usr/bin/desktop-telemetry-demo --bundle-check, --self-test and --screenshot, each in
# `env -i` with a fresh HOME,
# PATH=/usr/bin:/bin and QT_QPA_PLATFORM=offscreen. The frozen app then starts its collector child
# from /usr/lib/desktop-telemetry-demo/demo-app, lists drives through the chroot's libudev and /sys,
# and stores its events under $HOME/.local/share.
#
# Needs: root, debootstrap, and a Debian mirror (MIRROR=..., default: the first deb.debian.org-style
# URI in /etc/apt/sources.list.d/debian.sources, else http://deb.debian.org/debian). Not part of
# `uv run pytest`: it downloads ~60 MB from Debian and takes about 75 s plus the build (README,
# "Bundle it"). Without an argument it builds the .deb first (packaging/build.py, zstd).
# KEEP_CHROOT=1 leaves the chroot in place; CHROOT_CACHE=DIR reuses a debootstrap tarball there;
# SCREENSHOT_OUT=FILE copies the offscreen screenshot taken inside the chroot (fonts check).
set -euo pipefail
cd "$(dirname "$0")/.."

[[ $(id -u) == 0 ]] || { echo "test_deb_chroot: run as root (debootstrap and chroot)"; exit 2; }
command -v debootstrap >/dev/null || { echo "test_deb_chroot: apt-get install debootstrap"; exit 2; }

SUITE=${SUITE:-bookworm}
if [[ -z ${MIRROR:-} ]]; then
  MIRROR=$(sed -n 's/^URIs: *\(http[^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources \
    2>/dev/null | head -n1)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi
now() { date +%s.%N; }
took() { awk -v what="$1" -v t0="$2" -v t1="$(now)" 'BEGIN { printf "%s: %.1f s\n", what, t1 - t0 }'; }
t_all=$(now)

deb=${1:-}
if [[ -z $deb ]]; then
  t=$(now)
  uv run python packaging/build.py --cache build/packaging-cache --compression zstd --level 12
  deb=$(ls -t dist/desktop-telemetry-demo_*.deb | head -n1)
  took "build bundle + .deb" "$t"
fi
deb=$(realpath "$deb")

work=$(mktemp -d /tmp/deb-chroot.XXXXXX)
root=$work/root
cleanup() {
  for m in "$root/sys" "$root/proc" "$root/dev/pts" "$root/dev"; do
    mountpoint -q "$m" && umount -l "$m" || true
  done
  if [[ ${KEEP_CHROOT:-0} == 1 ]]; then echo "chroot kept: $root"; else rm -rf "$work"; fi
}
trap cleanup EXIT

t=$(now)
tarball=
if [[ -n ${CHROOT_CACHE:-} ]]; then
  mkdir -p "$CHROOT_CACHE"
  tarball=$(realpath "$CHROOT_CACHE")/debootstrap-$SUITE-minbase.tgz
  [[ -f $tarball ]] || debootstrap --variant=minbase --make-tarball="$tarball" "$SUITE" "$work/tb" "$MIRROR" >/dev/null
fi
debootstrap --variant=minbase ${tarball:+--unpack-tarball="$tarball"} "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" \
  || { tail -n 30 "$work/debootstrap.log"; exit 1; }
took "debootstrap --variant=minbase $SUITE ($MIRROR)" "$t"

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
cp /etc/resolv.conf "$root/etc/resolv.conf"

t=$(now)
cp "$deb" "$root/tmp/"
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
  "/tmp/$(basename "$deb")" >"$work/apt.log" || { tail -n 30 "$work/apt.log"; exit 1; }
took "apt-get install ./$(basename "$deb") (with its Depends)" "$t"
echo "installed: $(chroot "$root" dpkg-query -W -f='${Package} ${Version}, ${Installed-Size} KiB' desktop-telemetry-demo)"
echo "no Python in the chroot: $(chroot "$root" sh -c 'command -v python3 || echo none')"

t=$(now)
mkdir -p "$root/tmp/home"
run() {
  chroot "$root" env -i HOME=/tmp/home PATH=/usr/bin:/bin QT_QPA_PLATFORM=offscreen \
    desktop-telemetry-demo "$@"
}
set +e
run --bundle-check
rc_check=$?
run --self-test
rc_self=$?
run --screenshot /tmp/home/main-window.png
rc_shot=$?
set -e
rc=$((rc_check || rc_self || rc_shot))
took "desktop-telemetry-demo --bundle-check (rc $rc_check), --self-test (rc $rc_self), --screenshot (rc $rc_shot)" "$t"
[[ -z ${SCREENSHOT_OUT:-} ]] || cp "$root/tmp/home/main-window.png" "$SCREENSHOT_OUT" || true
echo "telemetry data: $(cd "$root/tmp/home" && find .local/share -name telemetry.db 2>/dev/null | head -n3 | tr '\n' ' ')"
took "total" "$t_all"
if ((rc != 0)); then echo "test_deb_chroot: FAILED"; exit "$rc"; fi
echo "test_deb_chroot: OK"
