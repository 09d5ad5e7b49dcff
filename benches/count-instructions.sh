#!/usr/bin/env bash
# Instructions per operation, counted by callgrind (valgrind), which gives the same count
# for the same binary and input whatever the host is doing (times on a shared host move by
# up to 2x). Each operation runs at two iteration counts; the difference divided by the
# difference in iterations is the cost of one, without start-up.
#
#   benches/count-instructions.sh            # parse, select (4 algorithms x 3 sizes), calls
#   benches/count-instructions.sh parse      # one group: parse | select | call
#
# For a call only the instructions inside the proxy core count (callgrind's toggle-collect
# on its entry points), not the harness building the backend's messages.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "count-instructions: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo bench -p sip-lb-benches --bench count --no-run 2>/dev/null
bin=$(cargo bench -p sip-lb-benches --bench count --no-run --message-format=json 2>/dev/null \
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
group=${1:-all}
if [ "$group" = all ] || [ "$group" = parse ]; then
  per "parse INVITE (625 bytes)" 10000 30000 -- parse-invite
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
