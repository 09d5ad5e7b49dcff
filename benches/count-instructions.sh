#!/usr/bin/env bash
# Instructions per operation, counted by callgrind (valgrind), which gives the same count
# for the same binary and input whatever the host is doing (times on a shared host move by
# up to 2x). Each operation runs at two iteration counts; the difference divided by the
# difference in iterations is the cost of one, without start-up.
#
#   benches/count-instructions.sh            # parse, select (4 algorithms x 3 sizes), calls
#   benches/count-instructions.sh parse      # one group: parse | select | call | peers
#
# `peers` (not part of the default run: it builds rsipstack, sipx-sip and rsip) counts the
# same six messages through sip-core and through each peer parser and prints the ratio
# peer / sip-core of instructions, a figure the host's load cannot move (a time ratio on a
# shared host moves by 2x between runs).
#
# For a call only the instructions inside the proxy core count (callgrind's toggle-collect
# on its entry points), not the harness building the backend's messages.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "count-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
group=${1:-all}
# The parse bench's messages, by the names `count parse` knows (messages::all()).
messages="invite 200-record-route ack bye register deep-via"
features=()
[ "$group" = peers ] && features=(--features peers)
cargo bench -p sip-lb-benches --bench count "${features[@]}" --no-run 2>/dev/null
bin=$(cargo bench -p sip-lb-benches --bench count "${features[@]}" --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("target", {}).get("name") == "count" and m.get("executable"):
        print(m["executable"])')
refs() { valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | awk '/refs:/ {gsub(",", "", $4); print $4}'; }
per() { # label n1 n2 extra-valgrind-args -- args-before-count
  local label=$1 n1=$2 n2=$3; shift 3
  local vg=() ; while [ "$1" != "--" ]; do vg+=("$1"); shift; done; shift
  local a b
  a=$(refs "${vg[@]}" "$bin" "$@" "$n1"); b=$(refs "${vg[@]}" "$bin" "$@" "$n2")
  printf '%-34s %8d instructions\n' "$label" $(( (b - a) / (n2 - n1) ))
}
count() { # n1 n2 args-before-count: instructions of one operation
  local n1=$1 n2=$2; shift 2
  local a b
  a=$(refs "$bin" "$@" "$n1"); b=$(refs "$bin" "$@" "$n2")
  echo $(( (b - a) / (n2 - n1) ))
}
if [ "$group" = peers ]; then
  printf '%-18s %9s %22s %22s %22s\n' message sip-core "rsipstack (ratio)" "sipx-sip (ratio)" "rsip (ratio)"
  for m in $messages; do
    ours=$(count 2000 6000 parse "$m")
    line=$(printf '%-18s %9d' "$m" "$ours")
    for p in rsipstack sipx-sip rsip; do
      # Exit status 3: the peer rejects the message (not counted); any other failure stops.
      rc=0; "$bin" parse-peer "$p" "$m" 1 2>/dev/null || rc=$?
      if [ "$rc" = 0 ]; then
        theirs=$(count 2000 6000 parse-peer "$p" "$m")
        line+=$(printf ' %13d (%5.1fx)' "$theirs" "$(awk -v a="$theirs" -v b="$ours" 'BEGIN { print a / b }')")
      elif [ "$rc" = 3 ]; then
        line+=$(printf ' %22s' rejects)
      else
        echo "count-instructions: count parse-peer $p $m failed (exit $rc)" >&2; exit 1
      fi
    done
    echo "$line"
  done
  exit 0
fi
if [ "$group" = all ] || [ "$group" = parse ]; then
  for m in $messages; do
    per "parse $m" 10000 30000 -- parse "$m"
  done
  per "parse invite, in place" 10000 30000 -- parse-in-place invite
  per "httparse, its header block" 10000 30000 -- httparse-invite
fi
if [ "$group" = all ] || [ "$group" = select ]; then
  for alg in round-robin call-id-hash from-uri-hash weight; do
    for n in 4 16 64; do
      per "select $alg/$n" 2000 12000 -- select "$alg" "$n"
    done
  done
fi
if [ "$group" = all ] || [ "$group" = call ]; then
  proxy=(--toggle-collect='sip_proxy::proxy::Proxy::handle_datagram'
         --toggle-collect='sip_proxy::proxy::Proxy::handle_timeout'
         --toggle-collect='sip_proxy::proxy::Proxy::poll_transmit'
         --toggle-collect='sip_proxy::proxy::Proxy::poll_event')
  for mode in stateful stateless; do
    per "call $mode (inside the proxy)" 500 1500 "${proxy[@]}" -- call "$mode"
  done
fi
