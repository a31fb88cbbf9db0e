#!/usr/bin/env bash
# Keep kind's packets to Service IPs on this host: a property of the test VM, never of nppctl.
#
# This VM's egress answers ANY TCP connection to port 80, whatever the address. A packet from a kind
# node to a Service ClusterIP that kube-proxy did not translate (a port the Service lacks, a Service
# without rules yet) goes to the node's default route, the Docker host, which forwards it out like any
# other address; there the egress answers, so the ClusterIP seems to serve port 80. On a normal host
# nothing would answer. This script rejects such packets on the Docker host, in the filter table's
# DOCKER-USER chain (dockerd sends forwarded traffic there first; created, with FORWARD's jump to it,
# if missing): packets coming in on the bridge of Docker's network "kind" and bound for the Kubernetes
# service range 10.96.0.0/12 (kubeadm's and kind's default; IPv4 only) get a TCP reset, or an ICMP
# port-unreachable for other protocols. Nothing from kind to that range leaves the host.
#
# Callable any time, idempotent: without the network "kind" (no cluster yet) it does nothing and exits
# 0, so callers run it again once a cluster exists. Its rules carry the comment nppctl-vm-egress; rules
# for an earlier "kind" network (another bridge) are replaced. Says what it did on stderr. Needs root.
set -euo pipefail
SERVICE_CIDR=10.96.0.0/12
TAG=nppctl-vm-egress
say() { printf 'vm-egress: %s\n' "$*" >&2; }
ipt() { iptables -w "$@"; }

# The Linux bridge of Docker's network "kind" (Docker names it br-<first 12 hex digits of the network
# ID> unless the network sets com.docker.network.bridge.name); empty when the network does not exist.
kind_bridge() {
  local id name
  id=$(docker network inspect -f '{{.Id}}' kind 2>/dev/null) || return 0
  name=$(docker network inspect -f '{{index .Options "com.docker.network.bridge.name"}}' kind)
  [[ -n $name && $name != "<no value>" ]] || name="br-${id:0:12}"
  printf '%s\n' "$name"
}

# The rules this script wants, as iptables arguments after the chain name (one rule a line).
wanted() {
  printf '%s\n' \
    "-i $1 -d $SERVICE_CIDR -p tcp -m comment --comment $TAG -j REJECT --reject-with tcp-reset" \
    "-i $1 -d $SERVICE_CIDR -m comment --comment $TAG -j REJECT --reject-with icmp-port-unreachable"
}

# DOCKER-USER and FORWARD's jump to it, as dockerd makes them (when Docker runs without them).
ensure_chain() {
  if ! ipt -n -L DOCKER-USER >/dev/null 2>&1; then
    ipt -N DOCKER-USER
    say "created chain DOCKER-USER"
  fi
  if ! ipt -C FORWARD -j DOCKER-USER 2>/dev/null; then
    ipt -I FORWARD 1 -j DOCKER-USER
    say "inserted FORWARD -j DOCKER-USER"
  fi
}

# Every rule of DOCKER-USER carrying the tag, as iptables -S prints it without "-A DOCKER-USER ".
tagged() {
  ipt -S DOCKER-USER | sed -n "s/^-A DOCKER-USER //p" | grep -F -- "--comment $TAG" || true
}

bridge=$(kind_bridge)
if [[ -z $bridge ]]; then
  say "no Docker network \"kind\": nothing to do"
  exit 0
fi
if ! ip link show "$bridge" >/dev/null 2>&1; then
  say "network \"kind\" has no bridge $bridge on this host"
  exit 1
fi
ensure_chain
mapfile -t want < <(wanted "$bridge")
all_there=true
for rule in "${want[@]}"; do
  read -ra args <<<"$rule"
  ipt -C DOCKER-USER "${args[@]}" 2>/dev/null || all_there=false
done
if $all_there && [[ $(tagged | wc -l) == "${#want[@]}" ]]; then
  say "DOCKER-USER already rejects $bridge -> $SERVICE_CIDR"
  exit 0
fi
# Start over: drop every tagged rule (an earlier bridge's too), then put the wanted ones first.
while read -r rule; do
  [[ -n $rule ]] || continue
  read -ra args <<<"$rule"
  ipt -D DOCKER-USER "${args[@]}"
  say "deleted DOCKER-USER $rule"
done < <(tagged)
for ((i = ${#want[@]} - 1; i >= 0; i--)); do
  read -ra args <<<"${want[i]}"
  ipt -I DOCKER-USER 1 "${args[@]}"
  say "inserted DOCKER-USER ${want[i]}"
done
