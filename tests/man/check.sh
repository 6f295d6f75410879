#!/bin/sh
# tests/man/check.sh BIN_DIR MAN_DIR - checks the man pages built into
# MAN_DIR against the programs in BIN_DIR:
#  - `groff -man -ww` has no warning for any of the three pages;
#  - the commands of verona(8)'s SYNOPSIS are those of `verona --help`, its
#    ctl commands those of `verona --help` and of `verona ctl --help`, its
#    user actions those of `verona --help`, and every option of those helps
#    is in its SYNOPSIS or OPTIONS (and verona-worker's in verona-worker(8));
#  - verona.conf(5) has an entry for every key of `verona config-example`,
#    and for no other.
# Pages are rendered by groff alone (Debian's groff-base), as plain ASCII on
# long lines. Fails with one line that says what is wrong.
set -eu

[ $# -eq 2 ] || { echo "usage: sh tests/man/check.sh BIN_DIR MAN_DIR" >&2; exit 2; }
bin=$1
man=$2

fail() {
    echo "tests/man/check.sh: $*" >&2
    exit 1
}

command -v groff >/dev/null 2>&1 || fail "groff not found (Debian package groff-base; deploy/deps.sh installs it)"

# The page as plain text: no bold or underline, lines too long to wrap.
render() {
    groff -man -Tascii -rLL=250n -P-cbou "$1" 2>/dev/null
}

# The lines of section $1 (a heading at the start of a line) of stdin.
section() {
    awk -v want="$1" '/^[^ ]/ { inside = ($0 == want); next } inside'
}

# Fails unless list $2 (from `$3`) and list $4 (verona(8)'s SYNOPSIS) hold
# the same words; $1 says what they are.
same_words() {
    [ -n "$2" ] || fail "found no ${1}s in \`$3\`"
    [ -n "$4" ] || fail "verona(8): found no ${1}s in the SYNOPSIS"
    for w in $2; do
        printf '%s\n' "$4" | grep -qxF -e "$w" || fail "verona(8): $1 '$w' of \`$3\` is not in the SYNOPSIS"
    done
    for w in $4; do
        printf '%s\n' "$2" | grep -qxF -e "$w" || fail "verona(8): $1 '$w' of the SYNOPSIS is not in \`$3\`"
    done
}

# Fails unless every option (-x, --word) of help text $2 (from `$3`) is in
# the SYNOPSIS or OPTIONS of rendered page $4 (named $1).
options_documented() {
    opts=$(printf '%s\n' "$2" | grep -oE '(^|[][ |(])--?[A-Za-z][A-Za-z-]*' | sed 's/^[][ |(]//' | sort -u)
    text=$(printf '%s\n' "$4" | section SYNOPSIS; printf '%s\n' "$4" | section OPTIONS)
    for o in $opts; do
        printf '%s\n' "$text" | grep -qE -e "(^|[][ |(,])$o([] |,.;)]|\$)" ||
            fail "$1: option $o of \`$3\` is in neither SYNOPSIS nor OPTIONS"
    done
}

# 1. groff finds nothing to warn about.
for page in verona.8 verona-worker.8 verona.conf.5; do
    [ -s "$man/$page" ] || fail "$man/$page: missing or empty"
    warnings=$(groff -man -ww -z "$man/$page" 2>&1 >/dev/null) || fail "$man/$page: groff failed: $warnings"
    [ -z "$warnings" ] || fail "$man/$page: groff -man -ww: $(printf '%s\n' "$warnings" | head -n 1)"
done

# 2. verona(8) and the helps agree.
help=$("$bin/verona" --help) || fail "verona --help failed"
ctl_help=$("$bin/verona" ctl --help) || fail "verona ctl --help failed"
worker_help=$("$bin/verona-worker" --help) || fail "verona-worker --help failed"
page=$(render "$man/verona.8") || fail "$man/verona.8: groff cannot render it"
worker_page=$(render "$man/verona-worker.8") || fail "$man/verona-worker.8: groff cannot render it"

# "verona ctl [-s SOCKET | -c FILE] status [--json]" -> "verona ctl status";
# "verona user add | passwd NAME" -> "verona user add|passwd NAME".
synopsis=$(printf '%s\n' "$page" | section SYNOPSIS |
    sed -e 's/\[[^]]*\]//g' -e 's/ *| */|/g' -e 's/^ *//' | grep '^verona ' || true)
page_commands=$(printf '%s\n' "$synopsis" | awk 'NF { print $2 }' | sort -u)
page_ctl=$(printf '%s\n' "$synopsis" | awk '$2 == "ctl" { print $3 }' | sort -u)
page_user=$(printf '%s\n' "$synopsis" | awk '$2 == "user" { print $3 }' | tr '|' '\n' | sort -u)

# A command is the first word of a line indented by two blanks.
help_commands=$(printf '%s\n' "$help" | sed -n 's/^  \([a-z][a-z-]*\).*/\1/p' | sort -u)
help_ctl=$(printf '%s\n' "$help" | sed -n 's/^  ctl //p' | sed 's/\[[^]]*\]//g' | tr '|' '\n' |
    awk 'NF { print $1 }' | sort -u)
help_user=$(printf '%s\n' "$help" | awk '$1 == "user" { print $2 }' | tr '|' '\n' | sort -u)
ctl_help_commands=$(printf '%s\n' "$ctl_help" | sed -n 's/^  \([a-z][a-z-]*\).*/\1/p' | sort -u)

same_words command "$help_commands" "verona --help" "$page_commands"
same_words "ctl command" "$help_ctl" "verona --help" "$page_ctl"
same_words "ctl command" "$ctl_help_commands" "verona ctl --help" "$page_ctl"
same_words "user action" "$help_user" "verona --help" "$page_user"
options_documented "verona(8)" "$help" "verona --help" "$page"
options_documented "verona(8)" "$ctl_help" "verona ctl --help" "$page"
options_documented "verona-worker(8)" "$worker_help" "verona-worker --help" "$worker_page"

# 3. verona.conf(5) has an entry for every key, and only for keys.
keys=$("$bin/verona" config-example | sed -n 's/^# \([a-z_][a-z0-9_]*\) = .*/\1/p') ||
    fail "verona config-example failed"
[ -n "$keys" ] || fail "found no keys in \`verona config-example\`"
conf_page=$(render "$man/verona.conf.5") || fail "$man/verona.conf.5: groff cannot render it"
entries=$(printf '%s\n' "$conf_page" | section KEYS | sed -n 's/^ \{1,8\}\([a-z_][a-z0-9_]*\) = .*/\1/p')
for k in $keys; do
    printf '%s\n' "$entries" | grep -qxF -e "$k" ||
        fail "verona.conf(5): key '$k' of \`verona config-example\` has no entry under KEYS"
done
for e in $entries; do
    printf '%s\n' "$keys" | grep -qxF -e "$e" ||
        fail "verona.conf(5): entry '$e' under KEYS is not a key of \`verona config-example\`"
done

echo "man pages: no groff warning; verona(8) agrees with --help ($(printf '%s\n' "$page_commands" | wc -l) commands," \
    "$(printf '%s\n' "$page_ctl" | wc -l) ctl commands); verona.conf(5) has all $(printf '%s\n' "$keys" | wc -l) keys"
