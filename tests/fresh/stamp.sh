#!/bin/sh
# The fingerprint of the files that decide whether `make run` and `make
# check` work on a bare Debian 12: one sha256 over the sorted list of
# them and their contents. tests/fresh/run.sh writes it to
# tests/fresh/proven.sha256 when it passes; .ci/run runs make check-fresh
# when the fingerprint differs from that file.
set -eu
cd "$(dirname "$0")/../.."
{ ls Makefile .ci/run deploy/deps.sh deploy/run.sh deploy/pg.sh mk/*.mk tests/fresh/run.sh tests/fresh/stamp.sh \
     tests/package/*.sh debian/control debian/rules 2>/dev/null | LC_ALL=C sort; } |
    while read -r f; do printf '%s ' "$f"; sha256sum < "$f"; done | sha256sum | cut -d' ' -f1
