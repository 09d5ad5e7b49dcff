#!/usr/bin/env bash
# System calls of sip-lb per call: four sipp backends (127.0.0.1:5081-5084), sip-lb on
# 127.0.0.1:5060 with the options given, strace -c over 3000 calls at 300 calls/s from a
# sipp caller honouring Record-Route. Loopback only, bounded, stops only what it started.
#
#   benches/lb/syscalls.sh                 # sip-lb's defaults (one worker per core)
#   benches/lb/syscalls.sh --workers 1     # one worker on one socket
#   benches/lb/syscalls.sh kamailio        # Kamailio with benches/lb/kamailio-stateful.cfg
#                                          # (2 children), its whole process tree
#
# With --perf first (`benches/lb/syscalls.sh --perf --workers 1`, `... --perf kamailio`):
# instead of counting system calls, a CPU profile of the same process tree
# (`perf record -e cpu-clock -F 2999 -g`) over 8 s of calls at 1000 calls/s, printed as
# shares of its samples with what each function calls (`perf report --children`).
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=strace
if [ "${1:-}" = --perf ]; then mode=perf; shift; fi
command -v perf >/dev/null || [ $mode = strace ] || { echo "syscalls.sh: needs perf (apt-get install linux-perf)" >&2; exit 1; }
for c in sipp strace; do command -v $c >/dev/null || { echo "syscalls.sh: needs $c (apt-get install sip-tester strace)" >&2; exit 1; }; done
for p in 5060 5070 5081 5082 5083 5084 9060; do
  if ss -Hlun "sport = :$p" | grep -q . || ss -Hltn "sport = :$p" | grep -q .; then
    echo "syscalls.sh: port $p on 127.0.0.1 is taken" >&2; exit 1
  fi
done
work=$(mktemp -d /tmp/sip-lb-syscalls-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for p in 5081 5082 5083 5084; do
  echo "1 sip:127.0.0.1:$p" >> "$work/dispatcher.list"
  sipp -sf benches/lb/uas.xml -i 127.0.0.1 -p $p -nostdin -timeout 120s > "$work/uas-$p.log" 2>&1 &
  pids+=($!)
done
if [ "${1:-}" = kamailio ]; then
  mpath=$(ls -d /usr/lib/*/kamailio/modules/ /usr/lib/kamailio/modules/ 2>/dev/null | head -1 || true)
  sed -e "s|__LISTEN__|127.0.0.1:5060|" -e "s|__LIST__|$work/dispatcher.list|" \
      -e "s|__CHILDREN__|2|" -e "s|__MPATH__|$mpath|" benches/lb/kamailio-stateful.cfg > "$work/kamailio.cfg"
  kamailio -f "$work/kamailio.cfg" -DD -E -m 1024 -M 64 -P "$work/kamailio.pid" > "$work/kamailio.log" 2>&1 &
  lb=$!; pids+=($lb)
else
  cargo build --release -q -p sip-lb
  target/release/sip-lb --listen udp:127.0.0.1:5060 --dispatcher-list "$work/dispatcher.list" \
    --set 1 --algorithm 4 --admin 127.0.0.1:9060 --log-level warn "$@" > "$work/sip-lb.log" 2>&1 &
  lb=$!; pids+=($lb)
fi
sleep 1.5
# Every process of the balancer's tree (Kamailio's children exist before strace attaches).
targets=(-p "$lb"); for c in $(pgrep -P "$lb" || true); do targets+=(-p "$c"); done
if [ $mode = perf ]; then
  # 15 000 calls at 1000/s; the profile covers seconds 3 to 11, when the load is steady.
  sipp -sf benches/lb/uac.xml 127.0.0.1:5060 -i 127.0.0.1 -p 5070 -m 15000 -r 1000 -nostdin \
    -timeout 60s -trace_stat -stf "$work/uac.csv" -fd 1 > "$work/uac.log" 2>&1 &
  uac=$!; pids+=($uac)
  sleep 3
  pidlist=$(printf '%s\n' "${targets[@]}" | grep -v '^-p$' | paste -sd,)
  perf record -e cpu-clock -F 2999 -g -p "$pidlist" -o "$work/perf.data" -- sleep 8 2> "$work/perf.log"
  wait "$uac" || true
  echo "${*:-sip-lb} : CPU profile of 8 s at 1000 calls/s ($work/perf.data), shares of all samples:"
  perf report -i "$work/perf.data" --children --sort sym -g none 2>/dev/null | grep -vE '^(#|$)' | head -45
  exit 0
fi
timeout 60 strace -c -f "${targets[@]}" -o "$work/strace.txt" 2> "$work/strace.log" &
st=$!; sleep 1
calls=3000
sipp -sf benches/lb/uac.xml 127.0.0.1:5060 -i 127.0.0.1 -p 5070 -m $calls -r 300 -nostdin \
  -timeout 40s -trace_stat -stf "$work/uac.csv" -fd 1 > "$work/uac.log" 2>&1 || true
sleep 1
kill -INT "$st" 2>/dev/null || true; wait "$st" 2>/dev/null || true
ok=$(python3 -c 'import sys
rows=[l.rstrip(";\n").split(";") for l in open(sys.argv[1]) if l.strip()]
print(dict(zip(rows[0], rows[-1])).get("SuccessfulCall(C)", "0"))' "$work/uac.csv")
echo "${*:-sip-lb} : $ok of $calls calls completed; system calls (strace -c):"
grep -vE '^(%|-)' "$work/strace.txt" | awk -v n="$ok" \
  '{ c = ($4 ~ /^[0-9]+$/) ? $4 : 0; if (c) printf "  %-14s %8d  %5.1f per call\n", $NF, c, c / n }'
