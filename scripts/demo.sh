#!/usr/bin/env bash
# The main job, for real but harmless: a throw-away "pod" network namespace wired to
# a "peer" namespace; mesh-init -p 15001 -u 1337 runs inside the pod; then an app's
# connection to the peer lands on the proxy port, and the proxy's own does not.
# Needs root, iproute2, iptables and python3. Never touches this machine's namespace.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo: needs root (it creates network namespaces)" >&2; exit 1; }
[ -f dist/mesh-init.cjs ] || npm run build >/dev/null

pod="mesh-init-demo-pod-$$" peer="mesh-init-demo-peer-$$" pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  ip netns del "$pod" 2>/dev/null || true
  ip netns del "$peer" 2>/dev/null || true
}
trap cleanup EXIT

ip netns add "$pod"
ip netns add "$peer"
ip -n "$pod" link add eth0 type veth peer name eth0 netns "$peer"
ip -n "$pod" addr add 10.200.1.1/24 dev eth0
ip -n "$peer" addr add 10.200.1.2/24 dev eth0
for ns in "$pod" "$peer"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done

probe="$(cat test/kernel/probe.py)"
listen() { # NS UID NAME PORT
  local fifo; fifo=$(mktemp -u); mkfifo "$fifo"
  ip netns exec "$1" setpriv --reuid="$2" --regid="$2" --clear-groups \
    /usr/bin/python3 -c "$probe" serve "$3" tcp "$4" <"$fifo" >/dev/null &
  pids+=($!); exec {fd}>"$fifo"; rm "$fifo"; sleep 0.3
}
connect() { # UID HOST PORT
  ip netns exec "$pod" setpriv --reuid="$1" --regid="$1" --clear-groups /usr/bin/python3 -c "$probe" connect tcp "$2" "$3"
}

listen "$pod" 1337 proxy 15001
listen "$peer" 0 peer 80

echo "\$ mesh-init -p 15001 -u 1337        # inside the pod's network namespace"
ip netns exec "$pod" node dist/mesh-init.cjs -p 15001 -u 1337 --ipv6 false
echo
echo "\$ iptables-save -t nat             # what the pod now holds"
for backend in nft legacy; do
  rules=$(ip netns exec "$pod" "iptables-$backend-save" -t nat 2>/dev/null | grep -v '^#' || true)
  if grep -q ISTIO <<<"$rules"; then echo "$rules"; fi
done
echo
echo "app (uid 1000) connects to 10.200.1.2:80 -> lands on:"
connect 1000 10.200.1.2 80
echo "proxy (uid 1337) connects to 10.200.1.2:80 -> lands on:"
connect 1337 10.200.1.2 80
