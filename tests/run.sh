#!/bin/sh
# `make check`: builds the sanitizer build, starts a throwaway PostgreSQL
# (as the postgres user when run as root), runs the unit and integration
# suites against it, and removes everything it made, whatever happens.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

jobs=$(nproc 2>/dev/null || echo 2)
echo "== build (AddressSanitizer + UndefinedBehaviorSanitizer; and UBSan only, for the fault tests)"
make -s BUILD=asan -j"$jobs" tests
make -s BUILD=ubsan -j"$jobs" tests
make -s BUILD=hooks -j"$jobs" build   # the replay's: release code with the test knobs
# ctl upgrade's "new build" (tests/fault/test_upgrade.c): the UBSan supervisor again, with another build id.
make -s BUILD=ubsan OUT=build/ubsan-next BUILD_ID="$(git describe --always --dirty 2>/dev/null || echo dev)-next" \
    -j"$jobs" build/ubsan-next/bin/verona

echo "== cppcheck"
make -s lint

echo "== structure: no two files call each other, directly or around a circle (and files over 600 lines, listed)"
python3 tests/structure/deps.py build/asan/obj --strict

echo "== alert rules (promtool: the config and rules check, and every rule fires and stays quiet in its unit test)"
(cd deploy/prometheus && promtool check config prometheus.yml >/dev/null && promtool test rules verona-alerts.test.yml)

tmp=$(mktemp -d /tmp/verona-check.XXXXXX)
chmod 755 "$tmp"
pgdir="$tmp/pg"
cleanup() {
    status=$?
    sh deploy/pg.sh stop "$pgdir" >/dev/null 2>&1 || true
    if [ "$status" -ne 0 ]; then
        for f in "$tmp"/*.log; do
            [ -f "$f" ] || continue
            echo "== $f (last lines)"; tail -n 20 "$f"
        done
        [ -f "$pgdir/postgres.log" ] && { echo "== postgres.log"; tail -n 20 "$pgdir/postgres.log"; }
        # Last, so that a CI log cut to its tail still names what failed.
        for f in "$tmp"/*.check; do
            [ -f "$f" ] || continue
            grep -q ':[FE]:' "$f" || continue
            echo "== failed checks ($(basename "$f" .check))"; grep -E ':[FE]:' "$f"
        done
    fi
    [ -n "${VERONA_KEEP_TMP:-}" ] && echo "kept $tmp" || rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT INT TERM

echo "== throwaway PostgreSQL in $pgdir"
VERONA_PG_PORT=${VERONA_PG_PORT:-55432}
export VERONA_PG_PORT
VERONA_DATABASE_URL=$(VERONA_PG_FSYNC=off sh deploy/pg.sh start "$pgdir")
export VERONA_DATABASE_URL VERONA_PG_DIR="$pgdir" VERONA_ROOT="$root" VERONA_TEST_TMP="$tmp"
export VERONA_BIN_DIR="$root/build/asan/bin"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

echo "== the private PostgreSQL lets nobody else in (SPEC 10.7: scram-sha-256, a 0600 passfile, a 0700 folder)"
pg_fail() { echo "deploy/pg.sh: $*" >&2; exit 1; }
[ "$(stat -c %a "$pgdir")" = 700 ] || pg_fail "$pgdir is $(stat -c %a "$pgdir"), not 700"
[ "$(stat -c %a "$pgdir/pgpass")" = 600 ] || pg_fail "$pgdir/pgpass is $(stat -c %a "$pgdir/pgpass"), not 600"
! grep -Eq '^[^#]*[[:space:]]trust([[:space:]]|$)' "$pgdir/data/pg_hba.conf" || pg_fail "pg_hba.conf trusts someone"
psql -w -X -qtA "$VERONA_DATABASE_URL" -c 'SELECT 1' >/dev/null || pg_fail "its own URL does not log in"
! psql -w -X -qtA "${VERONA_DATABASE_URL%%&passfile=*}&passfile=$pgdir/none" -c 'SELECT 1' >/dev/null 2>&1 ||
    pg_fail "a login without the password worked"
if [ "$(id -u)" -eq 0 ]; then
    ! (cd / && runuser -u nobody -- psql -w -X -qtA -h "$pgdir" -p "$VERONA_PG_PORT" -d verona -c 'SELECT 1') >/dev/null 2>&1 ||
        pg_fail "the nobody user connected"
    ! runuser -u nobody -- cat "$pgdir/pgpass" >/dev/null 2>&1 || pg_fail "the nobody user read the passfile"
fi

echo "== migrate (twice, and twice at once: it must be idempotent)"
build/asan/bin/verona migrate
build/asan/bin/verona migrate & p1=$!
build/asan/bin/verona migrate & p2=$!
wait "$p1"; wait "$p2"

echo "== deploy/verona.conf documents every key (verona config-example)"
build/asan/bin/verona config-example | diff -u deploy/verona.conf -

echo "== man pages (groff -ww clean; verona(8) agrees with --help; verona.conf(5) has every key)"
make -s BUILD=asan build >/dev/null  # two lines: set -e ignores a failure left of &&
sh tests/man/check.sh build/asan/bin build/asan/man

echo "== unit tests (ASan, then UBSan: hash_memory is off under ASan)"
CK_LOG_FILE_NAME="$tmp/unit.check" build/asan/tests/unit
CK_LOG_FILE_NAME="$tmp/unit-ubsan.check" build/ubsan/tests/unit

echo "== fuzz every parser: control protocol, config, admin request line, metrics request, HTTP through routing, JSON bodies (${FUZZ_SECONDS:-30} s each)"
make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-30}"

echo "== integration tests"
CK_LOG_FILE_NAME="$tmp/integration.check" VERONA_PG_FSYNC=off build/asan/tests/integration

echo "== fault tests under load (UBSan build: ASan would distort RSS)"
CK_LOG_FILE_NAME="$tmp/fault.check" VERONA_BIN_DIR="$root/build/ubsan/bin" VERONA_PG_FSYNC=off \
    VERONA_NEXT_VERONA="$root/build/ubsan-next/bin/verona" \
    build/ubsan/tests/fault

echo "== no worker called outside its seccomp allow-list (worker/sandbox.c; test_sandbox.c's call is on purpose)"
bad=$(grep -rl --include='*.log' '"event":"forbidden_syscall"' "$tmp" | xargs -r grep -L '"event":"test_forbidden_call"' || true)
if [ -n "$bad" ]; then
    echo "forbidden system calls (numbers: ausyscall N) in:"; grep -h '"forbidden_syscall"' $bad; exit 1
fi

echo "== the shop's outage replayed, short (tests/replay/replay.py): a leaking deploy against Verona and a real Prometheus"
/usr/bin/python3 tests/replay/replay.py --short

echo "== the status page in a real headless browser (chromium, selenium): the workers, a killed one replaced, a rollout"
/usr/bin/python3 tests/browser/status_page.py build/ubsan/bin

echo "== more than one host: three Patroni nodes, two Verona hosts and HAProxy in network namespaces, under faults (about 3 minutes)"
if [ "$(id -u)" -eq 0 ]; then
    sh tests/multihost/run.sh build/ubsan/bin
else
    echo "SKIPPED: tests/multihost/run.sh needs root (network namespaces); CI runs it as root"
fi
