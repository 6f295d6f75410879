# tests/multihost/net.sh - test hosts in network namespaces (sourced by
# tests/multihost/run.sh). One namespace holds a bridge ("the switch");
# each host is a namespace with one veth whose other end is on the bridge,
# addressed from 198.18.0.0/24 (RFC 2544's test range, SPEC 8). Nothing is
# routed off the machine: the namespaces have no default route, and the
# host's own namespace gets no address or route at all.
#
#   net_up HOST... (each "name:last-octet")   net_down
#   host_exec NAME CMD...   host_pids NAME   host_kill_all NAME
#   link_cut NAME   link_restore NAME

NET_PREFIX=${NET_PREFIX:-vr}
NET_SUBNET=198.18.0
NET_SWITCH="$NET_PREFIX-sw"
NET_HOSTS=""

net_ns() { echo "$NET_PREFIX-$1"; }

net_up() {
    ip netns add "$NET_SWITCH"
    ip -n "$NET_SWITCH" link add br0 type bridge
    ip -n "$NET_SWITCH" link set br0 up
    for spec in "$@"; do
        name=${spec%%:*}
        octet=${spec#*:}
        ns=$(net_ns "$name")
        ip netns add "$ns"
        NET_HOSTS="$NET_HOSTS $name"
        # Both ends are made in the switch's namespace, then one moves.
        ip -n "$NET_SWITCH" link add "p-$name" type veth peer name eth0 netns "$ns"
        ip -n "$NET_SWITCH" link set "p-$name" master br0 up
        ip -n "$ns" link set lo up
        ip -n "$ns" addr add "$NET_SUBNET.$octet/24" dev eth0
        ip -n "$ns" link set eth0 up
    done
}

host_exec() {
    ns=$(net_ns "$1")
    shift
    ip netns exec "$ns" "$@"
}

host_pids() {
    ip netns pids "$(net_ns "$1")" 2>/dev/null || true
}

# kill -9 of every process in the host (a power cut, as seen from outside).
host_kill_all() {
    for _ in 1 2 3; do
        pids=$(host_pids "$1")
        [ -z "$pids" ] && return 0
        # shellcheck disable=SC2086
        kill -9 $pids 2>/dev/null || true
        sleep 0.2
    done
}

# A silent partition: the host's cable pulled at the switch (no RST, no
# FIN: packets vanish).
link_cut() { ip -n "$NET_SWITCH" link set "p-$1" down; }
link_restore() { ip -n "$NET_SWITCH" link set "p-$1" up; }

net_down() {
    for name in $NET_HOSTS; do
        host_kill_all "$name"
    done
    for name in $NET_HOSTS; do
        ip netns del "$(net_ns "$name")" 2>/dev/null || true
    done
    ip netns del "$NET_SWITCH" 2>/dev/null || true
    NET_HOSTS=""
}
