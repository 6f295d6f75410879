#!/bin/sh
# The Debian package, end to end: build it (`make deb`, in a copy of this
# tree), lint it, install it with apt-get, point it at a throwaway
# PostgreSQL, run the installed service (under systemd where systemd runs,
# else with the unit's own command line, user and runtime folder), register
# and log a user in, `verona ctl status`, stop it, purge the package and
# check that nothing of it is left.
#
#   sh tests/package/run.sh      as root, from the checkout's top folder
#
# It installs what it needs (dpkg-dev, debhelper, lintian, the
# Build-Depends, postgresql, curl) and leaves those installed; the verona
# package, its user and the throwaway PostgreSQL are gone when it ends,
# passed or failed. VERONA_KEEP_TMP=1 keeps the work folder.
set -eu

t0=$(date +%s)
passed=0
step() { echo "== [$(( $(date +%s) - t0 ))s] $*"; step_logs=""; }
step_logs=""          # shown when the step fails
ok() { passed=$((passed + 1)); echo "ok   $*"; }
fail() { echo "FAIL $*" >&2; echo "package: $passed passed, 1 failed" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || { echo "tests/package/run.sh: run it as root (it installs and purges a package)" >&2; exit 2; }
{ [ -f debian/control ] && [ -f deploy/pg.sh ]; } || {
    echo "tests/package/run.sh: run it from the checkout's top folder" >&2; exit 2; }
root=$(pwd)

# It installs and purges the package and checks that purge removes the
# verona user: refuse to run where any of that is someone else's.
# verona is known to dpkg: installed, half-installed or its config left.
pkg_present() {
    s=$(dpkg-query -W -f='${Status}' verona 2>/dev/null) || return 1
    case "$s" in *not-installed) return 1 ;; esac
}
if pkg_present; then
    echo "tests/package/run.sh: the verona package is installed here; this test would purge it" >&2; exit 2
fi
if getent passwd verona >/dev/null || getent group verona >/dev/null || [ -e /etc/verona ]; then
    echo "tests/package/run.sh: a verona user, group or /etc/verona exists already; this test's purge would remove it" >&2
    exit 2
fi

# The package must work from its own config file alone.
unset VERONA_DATABASE_URL DATABASE_URL PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGOPTIONS
export DEBIAN_FRONTEND=noninteractive

# systemd as PID 1 (and not a chroot beside it): test through systemctl.
if [ -d /run/systemd/system ] && [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ]; then
    use_systemd=1
else
    use_systemd=0
fi
step "PID 1 is $(cat /proc/1/comm 2>/dev/null || echo unknown); under systemd: $([ $use_systemd = 1 ] && echo yes || echo no)"

# Under systemd the unit has PrivateTmp: the database's socket folder
# must not be in /tmp there.
if [ $use_systemd = 1 ]; then tmpbase=/run; else tmpbase=${TMPDIR:-/tmp}; fi
tmp=$(mktemp -d "$tmpbase/verona-pkgtest.XXXXXX")
chmod 755 "$tmp"       # apt's _apt user reads the .deb; the verona user reads its passfile
pgdir="$tmp/pg"
pgport=55439           # the private PostgreSQL's socket, and its port on 127.0.0.1
svc_pid=""
made_rundir=""
installed=0

cleanup() {
    status=$?
    set +e
    if [ -n "$svc_pid" ] && kill -0 "$svc_pid" 2>/dev/null; then kill -TERM "$svc_pid"; wait "$svc_pid"; fi
    [ $use_systemd = 1 ] && [ $installed = 1 ] && systemctl stop verona.service >/dev/null 2>&1
    if [ $installed = 1 ] && pkg_present; then
        echo "== cleanup: purging the verona package" >&2
        apt-get purge -y -qq verona >/dev/null 2>&1
    fi
    [ -n "$made_rundir" ] && rm -rf "$made_rundir"
    (cd "$root" && VERONA_PG_PORT=$pgport sh deploy/pg.sh stop "$pgdir") >/dev/null 2>&1
    if [ "$status" -ne 0 ]; then
        [ $use_systemd = 1 ] && journalctl -u verona.service --no-pager -n 30 >"$tmp/serve.log" 2>&1
        for f in $step_logs; do
            [ -f "$f" ] || continue
            echo "== $f (last lines)" >&2; tail -n 25 "$f" >&2
        done
    fi
    if [ -n "${VERONA_KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools
step "tools and build dependencies"
apt_updated=0
apt_update() { [ $apt_updated = 1 ] || { apt-get update -qq; apt_updated=1; }; }
missing=""
for p in dpkg-dev debhelper fakeroot lintian postgresql curl make; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt_update
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
if ! dpkg-checkbuilddeps >/dev/null 2>&1; then
    echo "installing the Build-Depends (apt-get build-dep ./)"
    apt_update
    apt-get build-dep -y -qq ./ >/dev/null
fi
dpkg-checkbuilddeps
ok "build tools and Build-Depends installed"

# ---------------------------------------------------------------- build
step "build: make deb (dpkg-buildpackage -us -uc, source and binary, in a copy)"
step_logs="$tmp/build.log"
debdir="$tmp/deb"
make --no-print-directory deb DEB_DIR="$debdir" DEB_BUILD_FLAGS="-us -uc" >"$tmp/build.log" 2>&1 ||
    fail "make deb failed (build.log above)"
set -- "$debdir"/verona_*_*.deb
{ [ $# -eq 1 ] && [ -f "$1" ]; } || fail "expected one verona_<version>_<arch>.deb in $debdir, found: $*"
deb=$1
changes=$(ls "$debdir"/verona_*_*.changes)
ok "built $(basename "$deb")"
[ -z "$(cd "$root" && ls -d debian/verona debian/.debhelper debian/files debian/*.substvars debian/debhelper-build-stamp 2>/dev/null)" ] ||
    fail "the build left files in the checkout's debian/"
ok "no build litter in the checkout's debian/"

step "lintian (fails on any E: and on any W: not overridden in debian/)"
set +e
lintian -I --show-overrides --fail-on error,warning "$changes" >"$tmp/lintian.out" 2>&1
lrc=$?
set -e
grep -v '^running with root privileges' "$tmp/lintian.out" || true
[ $lrc -eq 0 ] || fail "lintian: errors or warnings (exit $lrc)"
ok "lintian: no error, no warning left"

# ---------------------------------------------------------------- install
step "apt-get install $(basename "$deb")"
step_logs="$tmp/install.log"
installed=1
apt-get install -y -qq "$deb" >"$tmp/install.log" 2>&1 || fail "apt-get install failed"
dpkg-query -W -f='${Status}' verona | grep -q 'install ok installed' || fail "verona is not installed"
ok "installed $(dpkg-query -W -f='${Version}' verona)"

pw_entry=$(getent passwd verona) || fail "no verona user"
uid=$(echo "$pw_entry" | cut -d: -f3)
shell=$(echo "$pw_entry" | cut -d: -f7)
[ "$uid" -lt 1000 ] || fail "verona is not a system user (uid $uid)"
case "$shell" in */nologin|*/false) ;; *) fail "verona's shell is $shell" ;; esac
getent group verona >/dev/null || fail "no verona group"
id -nG verona | tr ' ' '\n' | grep -qx verona || fail "verona is not in the verona group"
ok "system user verona (uid $uid, $shell) and group verona"

conf=/etc/verona/verona.conf
[ "$(stat -c '%a %U:%G' "$conf")" = "640 root:verona" ] || fail "$conf is $(stat -c '%a %U:%G' "$conf"), not 640 root:verona"
dpkg-query -W -f='${Conffiles}\n' verona | grep -q " $conf " || fail "$conf is not a conffile"
grep -qx 'database_url =' "$conf" || fail "$conf does not set database_url empty"
grep -qx 'admin_socket = /run/verona/verona.sock' "$conf" || fail "$conf: admin_socket is not /run/verona/verona.sock"
ok "$conf: conffile, 640 root:verona, database_url empty, admin socket in /run/verona"

unit=/lib/systemd/system/verona.service
[ -f "$unit" ] || fail "no $unit"
unit_value() { sed -n "s/^$1=//p" "$unit" | tail -n 1; }
wanted_by=$(unit_value WantedBy)
[ -n "$wanted_by" ] || fail "$unit has no WantedBy="
if [ $use_systemd = 1 ]; then
    [ "$(systemctl is-enabled verona.service)" = enabled ] || fail "verona.service is not enabled"
    ! systemctl is-active --quiet verona.service || fail "verona.service was started at install"
    ok "unit $unit enabled (systemctl is-enabled), not started"
else
    link=/etc/systemd/system/$wanted_by.wants/verona.service
    [ "$(readlink "$link")" = "$unit" ] || fail "$link does not point to $unit (the unit is not enabled)"
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" != /usr/bin/verona ] || fail "a verona process runs after install (pid ${p#/proc/})"
    done
    ok "unit $unit enabled ($link), nothing started"
fi

# ---------------------------------------------------------------- the service as the unit runs it
exec_start=$(unit_value ExecStart | sed 's/^[-@+!:]*//')
svc_user=$(unit_value User)
svc_group=$(unit_value Group)
svc_umask=$(unit_value UMask)
rt_dir=$(unit_value RuntimeDirectory)
rt_mode=$(unit_value RuntimeDirectoryMode)
{ [ -n "$exec_start" ] && [ -n "$svc_user" ]; } || fail "$unit: no ExecStart= or User="
echo "unit: ExecStart=$exec_start User=$svc_user Group=${svc_group:-} RuntimeDirectory=${rt_dir:-} UMask=${svc_umask:-}"

# Without systemd: what the unit asks of it, by hand: the runtime folder,
# the user and group, no new privileges, the umask, / as the working
# folder and an environment of PATH alone. Output to $1.
start_by_hand() {
    if [ -n "$rt_dir" ]; then
        install -d -o "$svc_user" -g "${svc_group:-$svc_user}" -m "${rt_mode:-0755}" "/run/$rt_dir"
        made_rundir=/run/$rt_dir
    fi
    # shellcheck disable=SC2086
    ( cd / && umask "${svc_umask:-0022}" &&
      exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
          setpriv --reuid="$svc_user" --regid="${svc_group:-$svc_user}" --init-groups --no-new-privs \
          -- $exec_start ) >"$1" 2>&1 &
    svc_pid=$!
}
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -d' ' -f1)" != Z ]; }
# wait_gone SECONDS: the service started by hand has ended; its status in $svc_rc.
wait_gone() {
    deadline=$(( $(date +%s) + $1 ))
    while alive "$svc_pid"; do
        [ "$(date +%s)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
    svc_rc=0; wait "$svc_pid" || svc_rc=$?
    svc_pid=""
}

step "verona serve with the packaged config (database_url empty): exit 2, not a restart loop"
if [ $use_systemd = 1 ]; then
    systemctl start verona.service >/dev/null 2>&1 && fail "verona.service started with an empty database_url"
    [ "$(systemctl show -p ExecMainStatus --value verona.service)" = 2 ] || fail "verona.service did not exit 2"
    n=$(systemctl show -p NRestarts --value verona.service)
    deadline=$(( $(date +%s) + 3 ))   # RestartSec=1: three seconds would show a restart
    while [ "$(date +%s)" -lt "$deadline" ]; do
        [ "$(systemctl show -p NRestarts --value verona.service)" = "$n" ] || fail "verona.service is restarting"
        sleep 0.2
    done
    systemctl status --no-pager verona.service >"$tmp/empty-url.log" 2>&1 || true
    journalctl -u verona.service --no-pager -n 20 >>"$tmp/empty-url.log" 2>&1 || true
    systemctl reset-failed verona.service || true
else
    start_by_hand "$tmp/empty-url.log"
    wait_gone 10 || fail "verona serve with an empty database_url is still running after 10 s"
    [ "$svc_rc" -eq 2 ] || { cat "$tmp/empty-url.log"; fail "verona serve with an empty database_url exited $svc_rc, not 2"; }
    rm -rf "$made_rundir"; made_rundir=""
fi
grep -q 'database_url is not set' "$tmp/empty-url.log" || {
    cat "$tmp/empty-url.log"; fail "no 'database_url is not set' message"; }
ok "empty database_url: exit 2, \"$(grep -o '[^"]*database_url is not set[^"]*' "$tmp/empty-url.log" | head -n 1)\""

# ---------------------------------------------------------------- database
step "throwaway PostgreSQL in $pgdir"
step_logs="$pgdir/postgres.log"
# Its socket is in a 0700 folder of the postgres user (SPEC 10.7): the
# verona user reaches it on 127.0.0.1, with scram-sha-256 and a password
# of its own in a 0600 passfile only it (and root) can read.
pg_url=$(VERONA_PG_TCP=1 VERONA_PG_PORT=$pgport sh deploy/pg.sh start "$pgdir") || fail "deploy/pg.sh start failed"
echo "deploy/pg.sh: $pg_url"
# pg.sh's URL logs in as the postgres superuser. Verona gets what a real
# deployment gives it: its own login role, owner of its database, no
# superuser; the URL in the config names that role.
mkdir "$tmp/svc"
chown "$svc_user:" "$tmp/svc"
chmod 700 "$tmp/svc"
(cd / && runuser -u "$svc_user" -- sh -c 'umask 077 && printf "*:*:*:verona:%s\n" "$(head -c 18 /dev/urandom | base64 | tr -d "/+=")" > "$1"' \
    sh "$tmp/svc/pgpass")
app_pw=$(sed 's/^[^:]*:[^:]*:[^:]*:[^:]*://' "$tmp/svc/pgpass")
printf "CREATE ROLE verona LOGIN PASSWORD '%s';\nALTER DATABASE verona OWNER TO verona;\n" "$app_pw" |
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 "$pg_url") >/dev/null ||
    fail "could not create the verona role"
db_url="postgresql://verona@127.0.0.1:$pgport/verona?passfile=$tmp/svc/pgpass"
[ "$(cd / && runuser -u "$svc_user" -- psql -w -X -qtA "$db_url" -c 'SELECT current_user' 2>&1)" = verona ] ||
    fail "the $svc_user user cannot log in as verona with its passfile"
! (cd / && runuser -u nobody -- psql -w -X -qtA "postgresql://verona@127.0.0.1:$pgport/verona" -c 'SELECT 1') >/dev/null 2>&1 ||
    fail "nobody logged in as verona without a password"
! (cd / && runuser -u nobody -- psql -w -X -qtA "postgresql://postgres@/verona?host=$pgdir&port=$pgport" -c 'SELECT 1') >/dev/null 2>&1 ||
    fail "nobody reached the superuser's socket"
ok "database: role verona owns database verona; $svc_user logs in on 127.0.0.1:$pgport with its 0600 passfile; nobody gets in without it"

# A free loopback port: not in the kernel's list of listening sockets.
port_in_use() {
    hex=$(printf '%04X' "$1")
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v h=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == h { f = 1 } END { exit !f }'
}
free_port() {
    p=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 20000 + 30000 ))
    while port_in_use "$p" || [ "$p" = "${1:-}" ]; do p=$((p + 1)); done
    echo "$p"
}
port=$(free_port)
mport=$(free_port "$port")

sed_escape() { printf '%s\n' "$1" | sed 's/[&|\\]/\\&/g'; }
sed -i -e "s|^database_url =.*|database_url = $(sed_escape "$db_url")|" \
       -e "s|^#* *listen =.*|listen = 127.0.0.1:$port|" \
       -e "s|^#* *metrics_listen =.*|metrics_listen = 127.0.0.1:$mport|" "$conf"
{ grep -qx "database_url = $db_url" "$conf" && grep -qx "listen = 127.0.0.1:$port" "$conf"; } ||
    fail "could not set database_url and listen in $conf"
[ "$(stat -c '%a %U:%G' "$conf")" = "640 root:verona" ] || fail "$conf lost its mode or owner when edited"
ok "$conf: database_url = $db_url, listen 127.0.0.1:$port, metrics 127.0.0.1:$mport"

step "verona migrate -c $conf (the operator's step)"
step_logs="$tmp/migrate.log $pgdir/postgres.log"
verona migrate -c "$conf" >"$tmp/migrate.log" 2>&1 || { cat "$tmp/migrate.log"; fail "verona migrate failed"; }
tail -n 3 "$tmp/migrate.log"
ok "verona migrate"

# ---------------------------------------------------------------- serve
step "start the installed service: $exec_start as $svc_user"
step_logs="$tmp/serve.log $pgdir/postgres.log"
if [ $use_systemd = 1 ]; then
    systemctl start verona.service || { systemctl status --no-pager verona.service || true; fail "systemctl start verona failed"; }
else
    start_by_hand "$tmp/serve.log"
fi
# until URL SECONDS: poll until URL answers 200.
until_200() {
    deadline=$(( $(date +%s) + $2 ))
    until curl -fsS -o /dev/null --max-time 2 "$1" 2>/dev/null; do
        if [ $use_systemd = 1 ]; then
            systemctl is-active --quiet verona.service || fail "verona.service stopped while waiting for $1"
        else
            alive "$svc_pid" || fail "verona serve exited while waiting for $1"
        fi
        [ "$(date +%s)" -lt "$deadline" ] || fail "$1 did not answer 200 within $2 s"
        sleep 0.2
    done
}
base=http://127.0.0.1:$port
until_200 "$base/healthz" 30
ok "GET /healthz 200"
until_200 "$base/readyz" 30
ok "GET /readyz 200 (the workers reach PostgreSQL)"

user="pkgtest$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')"
password=$(head -c 15 /dev/urandom | base64 | tr '+/' '-_')     # 20 random characters
post() {
    curl -sS -o "$tmp/$1.json" -w '%{http_code}' --max-time 10 \
        -H 'Content-Type: application/json' -d "$3" "$base$2"
}
code=$(post register /v1/users "{\"username\":\"$user\",\"password\":\"$password\"}")
[ "$code" = 201 ] || fail "POST /v1/users: $code $(cat "$tmp/register.json")"
ok "POST /v1/users 201 $(cat "$tmp/register.json")"
code=$(post login /v1/login "{\"username\":\"$user\",\"password\":\"$password\"}")
[ "$code" = 200 ] || fail "POST /v1/login: $code $(cat "$tmp/login.json")"
token=$(sed -n 's/.*"token" *: *"\([^"]*\)".*/\1/p' "$tmp/login.json")
[ ${#token} -eq 43 ] || fail "POST /v1/login: no 43-character token in $(cat "$tmp/login.json")"
ok "POST /v1/login 200 with a token"
code=$(curl -sS -o "$tmp/session.json" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $token" "$base/v1/session")
{ [ "$code" = 200 ] && grep -q "\"$user\"" "$tmp/session.json"; } || fail "GET /v1/session: $code $(cat "$tmp/session.json")"
ok "GET /v1/session 200 for $user"

step "verona ctl status (as root, the packaged config's admin socket)"
step_logs="$tmp/serve.log"
verona ctl status >"$tmp/status.out" 2>&1 || { cat "$tmp/status.out"; fail "verona ctl status failed"; }
cat "$tmp/status.out"
grep -q ready "$tmp/status.out" || fail "verona ctl status shows no ready worker"
ok "verona ctl status"

step "verona ctl stop"
step_logs="$tmp/serve.log"
verona ctl stop || fail "verona ctl stop failed"
if [ $use_systemd = 1 ]; then
    deadline=$(( $(date +%s) + 30 ))
    while systemctl is-active --quiet verona.service; do
        [ "$(date +%s)" -lt "$deadline" ] || fail "verona.service still active 30 s after ctl stop"
        sleep 0.2
    done
    [ "$(systemctl show -p ExecMainStatus --value verona.service)" = 0 ] || fail "verona.service did not exit 0"
else
    wait_gone 30 || fail "verona serve still running 30 s after ctl stop"
    [ "$svc_rc" -eq 0 ] || fail "verona serve exited $svc_rc after ctl stop"
    rm -rf "$made_rundir"; made_rundir=""      # systemd removes the RuntimeDirectory on stop
fi
ok "stopped, exit 0"

# ---------------------------------------------------------------- purge
step "apt-get purge verona"
step_logs="$tmp/purge.log"
dpkg -L verona >"$tmp/files"
apt-get purge -y -qq verona >"$tmp/purge.log" 2>&1 || fail "apt-get purge failed"
installed=0
! pkg_present || fail "verona still known to dpkg after purge"
left=""
while IFS= read -r f; do
    [ "$f" = /. ] && continue
    [ -e "$f" ] || [ -L "$f" ] || continue
    # A folder that another package lists (/usr/bin, ...) stays, and so
    # does the system's own merged-/usr link (/lib -> usr/lib).
    if [ -d "$f" ]; then
        [ -L "$f" ] && continue
        dpkg-query -S "$f" >/dev/null 2>&1 && continue
    fi
    left="$left $f"
done <"$tmp/files"
[ -z "$left" ] || fail "left after purge:$left"
ok "none of the $(grep -vc '^/\.$' "$tmp/files") paths of dpkg -L verona is left but shared folders"
[ ! -e /etc/verona ] || fail "/etc/verona is left: $(ls -A /etc/verona)"
! getent passwd verona >/dev/null || fail "the verona user is left"
! getent group verona >/dev/null || fail "the verona group is left"
links=$(find /etc/systemd/system /var/lib/systemd/deb-systemd-helper-enabled /var/lib/systemd/deb-systemd-helper-masked \
    -name 'verona.service*' 2>/dev/null || true)
[ -z "$links" ] || fail "unit links or deb-systemd-helper state left: $links"
! dpkg-statoverride --list | grep -q verona || fail "a dpkg-statoverride for verona is left"
[ ! -e /run/verona ] || fail "/run/verona is left"
ok "no /etc/verona, no verona user or group, no enabled-unit link"
(cd / && runuser -u postgres -- psql -X -qtA "$pg_url" -c "SELECT count(*) FROM users WHERE username = '$user'") >"$tmp/db.out" 2>&1 ||
    fail "the database is not there after purge: $(cat "$tmp/db.out")"
[ "$(cat "$tmp/db.out")" = 1 ] || fail "the registered user is not in the database after purge: $(cat "$tmp/db.out")"
ok "the database was not touched by purge (the user registered is still there)"

step "done"
echo "package: $passed passed, 0 failed ($(( $(date +%s) - t0 )) s)"
