#!/bin/sh
# make check-fresh: proves that the README's two commands work as the first
# command after `git clone` on a bare Debian 12 (SPEC 8; issue 17).
#
# mmdebstrap makes a minimal Debian 12 (minbase, plus git, make and
# ca-certificates) from this machine's apt mirror; none of Verona's
# packages is in it (checked). Two roots are unpacked from it:
#   1. a fresh clone of this checkout's HEAD runs `make run` (installing
#      what it needs, building, starting its private PostgreSQL); the test
#      registers and logs a user in through it, then `verona ctl stop`;
#   2. a second fresh clone runs the build of `make check` (its
#      deploy/deps.sh, then the ASan and UBSan builds of every suite: the
#      part that read pkg-config before anything was installed), then
#      tests/package/run.sh (the .deb built, linted, installed, used,
#      purged) inside that root.
# The suites themselves run in `make check` on the machine; running them
# again in root 2 would add five minutes for nothing the build did not
# already show. The roots share an apt archive folder (downloaded .debs,
# not installed ones), so the second root does not download again.
#
# Each root runs in its own PID, IPC and mount namespaces (chroot inside
# `unshare`), so killing one process ends everything it started and its
# SysV semaphores stay private; the network is the machine's (apt needs
# the mirror), and the only addresses used are loopback ones.
# Needs root, mmdebstrap (installed when missing) and about 3 GB in
# /var/tmp. On success it writes tests/fresh/proven.sha256 (see .ci/run).
set -eu

top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
[ "$(id -u)" -eq 0 ] || { echo "check-fresh: needs root (chroot, mounts, namespaces)" >&2; exit 2; }
command -v mmdebstrap >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null; }

mirror=${FRESH_MIRROR:-$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)}
mirror=${mirror:-http://deb.debian.org/debian}
work=$(mktemp -d /var/tmp/verona-fresh.XXXXXX)
start=$(date +%s)
phase() { echo "== [$(( $(date +%s) - start ))s] $*"; }

# Everything mounted under a root, deepest first; never rm -rf while any
# mount is left (an rm through a bind mount of /dev would be a disaster).
unmount_root() {
    for m in $(findmnt -rn -o TARGET | grep "^$1/" | sort -r); do
        umount -l "$m" 2>/dev/null || true
    done
}
cleanup() {
    status=$?
    for pidfile in "$work"/*.pid; do
        [ -f "$pidfile" ] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
    done
    for r in "$work"/root1 "$work"/root2; do
        [ -d "$r" ] && unmount_root "$r"
    done
    if findmnt -rn -o TARGET | grep -q "^$work/"; then
        echo "check-fresh: mounts left under $work; not removing it" >&2
    else
        rm -rf "$work"
    fi
    [ "$status" -eq 0 ] && echo "check-fresh: passed in $(( $(date +%s) - start )) s" || echo "check-fresh: FAILED" >&2
    exit "$status"
}
trap cleanup EXIT
# Stopped from outside: a failure (cleanup sees 130), never "passed".
trap 'exit 130' INT TERM

phase "a minimal Debian 12 from $mirror (mmdebstrap minbase + git, make)"
mmdebstrap --quiet --variant=minbase --include=git,make,ca-certificates bookworm "$work/base.tar" "$mirror"
mkdir -p "$work/archives"

# Unpacks a root, clones HEAD into /root/verona, mounts what a system has.
make_root() {
    r=$work/$1
    mkdir -p "$r"
    tar -C "$r" -xf "$work/base.tar"
    for p in libuv1-dev pkg-config gcc libpq-dev postgresql; do
        if chroot "$r" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
            echo "check-fresh: $p is already in the fresh root" >&2
            exit 1
        fi
    done
    git clone -q "$top" "$r/root/verona"
    cp /etc/resolv.conf "$r/etc/resolv.conf"
    mount --bind /dev "$r/dev"
    mount --bind /dev/pts "$r/dev/pts"
    mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
    mount -t sysfs sysfs "$r/sys"
    mkdir -p "$r/var/cache/apt/archives"
    mount --bind "$work/archives" "$r/var/cache/apt/archives"
    # apt in a fresh root deletes what it downloaded; keep it for root 2.
    echo 'Binary::apt::APT::Keep-Downloaded-Packages "true";' > "$r/etc/apt/apt.conf.d/99keep"
}

# Runs a command in a root, in new PID, IPC and mount namespaces, with its
# own /proc; prints nothing, returns the command's status.
in_root() {
    r=$work/$1
    shift
    unshare --pid --fork --ipc --mount --mount-proc="$r/proc" \
        chroot "$r" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 \
        TERM=dumb DEBIAN_FRONTEND=noninteractive /bin/sh -c "$*"
}

post_json() {
    curl -s -o "$work/answer" -w '%{http_code}' -X POST "http://127.0.0.1:8080$1" \
        -H 'Content-Type: application/json' -d "$2"
}

phase "root 1: a fresh clone's first command is make run"
make_root root1
( in_root root1 'cd /root/verona && exec make run' > "$work/make-run.log" 2>&1 ) &
echo $! > "$work/root1.pid"
deadline=$(( $(date +%s) + 1500 ))
until curl -fs -o /dev/null http://127.0.0.1:8080/healthz; do
    if ! kill -0 "$(cat "$work/root1.pid")" 2>/dev/null; then
        tail -n 30 "$work/make-run.log" >&2
        echo "check-fresh: make run ended before it served" >&2
        exit 1
    fi
    [ "$(date +%s)" -lt "$deadline" ] || { tail -n 30 "$work/make-run.log" >&2; echo "check-fresh: make run did not serve within 25 min" >&2; exit 1; }
    sleep 1
done
phase "root 1: serving; register and log in"
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
body="{\"username\":\"fresh1\",\"password\":\"$password\"}"
code=$(post_json /v1/users "$body")
[ "$code" = 201 ] || { cat "$work/answer" >&2; echo "check-fresh: register answered $code" >&2; exit 1; }
code=$(post_json /v1/login "$body")
[ "$code" = 200 ] && grep -q '"token"' "$work/answer" || {
    cat "$work/answer" >&2; echo "check-fresh: login answered $code" >&2; exit 1; }
phase "root 1: login 200 with a token; verona ctl stop"
chroot "$work/root1" /root/verona/build/release/bin/verona ctl -s /root/verona/var/verona.sock stop
run_status=0
wait "$(cat "$work/root1.pid")" || run_status=$?
rm -f "$work/root1.pid"
[ "$run_status" -eq 0 ] || { tail -n 20 "$work/make-run.log" >&2; echo "check-fresh: make run exited $run_status" >&2; exit 1; }
if curl -fs -o /dev/null http://127.0.0.1:8080/healthz; then
    echo "check-fresh: something still serves on 8080 after the stop" >&2
    exit 1
fi
unmount_root "$work/root1"
rm -rf "$work/root1"

phase "root 2: a fresh clone's first command is make check's build"
make_root root2
if ! in_root root2 'cd /root/verona && make -s BUILD=asan tests && make -s BUILD=ubsan tests && make -s lint' \
        > "$work/make-check.log" 2>&1; then
    tail -n 30 "$work/make-check.log" >&2
    echo "check-fresh: make check's build failed in the fresh root" >&2
    exit 1
fi
phase "root 2: the Debian package, built, linted, installed, used and purged"
if ! in_root root2 'cd /root/verona && sh tests/package/run.sh' > "$work/package.log" 2>&1; then
    tail -n 30 "$work/package.log" >&2
    echo "check-fresh: tests/package/run.sh failed in the fresh root" >&2
    exit 1
fi
grep -E '^package: ' "$work/package.log" || true
phase "done"
sh tests/fresh/stamp.sh > tests/fresh/proven.sha256
