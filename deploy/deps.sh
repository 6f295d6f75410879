#!/bin/sh
# Installs the Debian 12 packages Verona builds, runs and tests with, when
# any is missing. As root it calls apt-get; otherwise it names what is
# missing and fails, so a build never half-works on a machine without them.
set -eu

packages="build-essential pkg-config libuv1-dev libpq-dev libsodium-dev
libhttp-parser-dev libjansson-dev libinih-dev libzxcvbn-dev libsystemd-dev libseccomp-dev
check libsubunit-dev postgresql postgresql-contrib wrk curl procps util-linux groff-base cppcheck clang libclang-rt-14-dev
prometheus nginx haproxy patroni etcd-server etcd-client
python3 chromium chromium-driver python3-selenium"

missing=""
for p in $packages; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "deploy/deps.sh: missing Debian packages:$missing" >&2
    echo "deploy/deps.sh: install them with: sudo apt-get install$missing" >&2
    exit 1
fi

echo "deploy/deps.sh: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >&2
