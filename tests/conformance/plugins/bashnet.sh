# bashnet.sh: a small bridge plugin in bash, the base of the card's fixture plugins (sourced, not run).
# Like the course's plugin: the bridge (conf "bridge", default cni0) must exist with the subnet's
# first address, addresses come from a counter file in /tmp, the namespace must be a
# /var/run/netns entry. Unlike it: the counter is locked, DEL removes the veth, CHECK checks, and
# errors are CNI error objects. A fixture sources this, overrides one thing, then runs bashnet_main.
# Needs bash, jq, iproute2, util-linux (flock).

SUPPORTED='["0.3.0","0.3.1","0.4.0","1.0.0"]'
USE_LOCK=1
CNI_VERSION=1.0.0

cni_error() { # code msg: the error object on stdout, exit 1
  jq -cn --arg v "$CNI_VERSION" --argjson c "$1" --arg m "$2" '{cniVersion: $v, code: $c, msg: $m}'
  exit 1
}

must() { # run a command; its failure is error 100 with its stderr
  local out
  out=$("$@" 2>&1) || cni_error 100 "$*: $out"
}

before_add() { :; }

host_veth() {
  printf 'bn%s' "$(printf '%s/%s' "$CNI_CONTAINERID" "$CNI_IFNAME" | sha1sum | cut -c1-8)"
}

set_netns() { # NS: the `ip netns` name of CNI_NETNS
  case "$CNI_NETNS" in
    /var/run/netns/* | /run/netns/*) NS=$(basename "$CNI_NETNS") ;;
    *) cni_error 4 "CNI_NETNS must be a /var/run/netns entry, got '$CNI_NETNS'" ;;
  esac
}

cmd_add() {
  local name subnet bridge base prefix gw counter n hv tmp hmac cmac
  read -r name subnet bridge < <(jq -r '[.name, .subnet, (.bridge // "cni0")] | @tsv' <<<"$CONF")
  base=${subnet%.*}
  prefix=${subnet#*/}
  gw="$base.1"
  ip link show "$bridge" >/dev/null 2>&1 || cni_error 11 "bridge $bridge does not exist: create it first"
  [ -e "$CNI_NETNS" ] || cni_error 4 "CNI_NETNS $CNI_NETNS does not exist"
  set_netns
  before_add
  counter="/tmp/bashnet-$name.counter"
  if [ "$USE_LOCK" = 1 ]; then
    exec 9>>"$counter.lock"
    flock 9
  fi
  n=$(cat "$counter" 2>/dev/null || echo 1)
  n=$((n + 1))
  hv=$(host_veth)
  tmp="bt${hv#bn}"
  must ip link add "$hv" type veth peer name "$tmp"
  must ip link set "$tmp" netns "$NS"
  must ip -n "$NS" link set "$tmp" name "$CNI_IFNAME"
  must ip link set "$hv" master "$bridge" up
  must ip -n "$NS" link set "$CNI_IFNAME" up
  must ip -n "$NS" addr add "$base.$n/$prefix" dev "$CNI_IFNAME"
  must ip -n "$NS" route add default via "$gw"
  echo "$n" >"$counter"
  echo "$(date +%FT%T) ADD $CNI_CONTAINERID $base.$n" >>"/var/log/bashnet.log"
  hmac=$(ip -j link show "$hv" | jq -r '.[0].address')
  cmac=$(ip -n "$NS" -j link show "$CNI_IFNAME" | jq -r '.[0].address')
  jq -cn --arg v "$CNI_VERSION" --arg hv "$hv" --arg hmac "$hmac" --arg ifname "$CNI_IFNAME" \
    --arg cmac "$cmac" --arg netns "$CNI_NETNS" --arg addr "$base.$n/$prefix" --arg gw "$gw" '{
      cniVersion: $v,
      interfaces: [{name: $hv, mac: $hmac}, {name: $ifname, mac: $cmac, sandbox: $netns}],
      ips: [{address: $addr, gateway: $gw, interface: 1}
            + (if ($v | startswith("0.")) then {version: "4"} else {} end)],
      routes: [{dst: "0.0.0.0/0", gw: $gw}],
      dns: {}
    }'
}

cmd_del() {
  ip link del "$(host_veth)" >/dev/null 2>&1
  echo "$(date +%FT%T) DEL $CNI_CONTAINERID" >>"/var/log/bashnet.log"
  exit 0
}

cmd_check() {
  local want
  want=$(jq -r '.prevResult.ips[0].address // empty' <<<"$CONF")
  [ -n "$want" ] || cni_error 7 "CHECK needs prevResult with the pod's address"
  set_netns
  ip link show "$(host_veth)" >/dev/null 2>&1 || cni_error 100 "host veth $(host_veth) is missing"
  ip -n "$NS" -o addr show dev "$CNI_IFNAME" 2>/dev/null | grep -qF "inet $want " ||
    cni_error 100 "$CNI_IFNAME in $CNI_NETNS lacks its address $want"
  exit 0
}

bashnet_main() {
  CONF=$(cat)
  if [ "${CNI_COMMAND:-}" = VERSION ]; then
    jq -cn --argjson s "$SUPPORTED" '{cniVersion: "1.0.0", supportedVersions: $s}'
    exit 0
  fi
  jq -e 'type == "object"' >/dev/null 2>&1 <<<"$CONF" || cni_error 6 "cannot decode the network configuration"
  CNI_VERSION=$(jq -r '.cniVersion // ""' <<<"$CONF")
  jq -e --arg v "$CNI_VERSION" 'index($v) != null' >/dev/null <<<"$SUPPORTED" ||
    cni_error 1 "incompatible CNI version '$CNI_VERSION'"
  case "${CNI_COMMAND:-}" in
    ADD) cmd_add ;;
    DEL) cmd_del ;;
    CHECK) cmd_check ;;
    *) cni_error 4 "unknown CNI_COMMAND '${CNI_COMMAND:-}'" ;;
  esac
}
