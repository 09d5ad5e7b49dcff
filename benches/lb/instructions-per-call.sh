#!/usr/bin/env bash
# Instructions per call of the whole sip-lb binary under load: every thread, the runtime's
# receive and send paths, timers and statistics included (benches/count-instructions.sh
# counts only the proxy core). benches/lb/run.py starts `sip-lb --workers 1` under
# callgrind (through a wrapper given as --lb-bin) for N1 and then N2 calls at RATE calls/s
# from sipp; the difference of the two totals divided by N2 - N1 is the cost of one call,
# without start-up. Loopback only; run.py bounds and stops everything it starts.
#
#   benches/lb/instructions-per-call.sh                 # stateful, 300 and 900 calls at 30/s
#   benches/lb/instructions-per-call.sh --stateless
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v valgrind >/dev/null || { echo "instructions-per-call: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
bal=sip-lb-1w
[ "${1:-}" = --stateless ] && bal=sip-lb-stateless-1w
n1=${N1:-300} n2=${N2:-900} rate=${RATE:-30}
cargo build --release -q -p sip-lb
work=$(mktemp -d /tmp/sip-lb-count-XXXXXX)
cat > "$work/sip-lb" <<WRAP
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$work/callgrind.out.\$\$ $PWD/target/release/sip-lb "\$@"
WRAP
chmod +x "$work/sip-lb"
totals=()
for n in "$n1" "$n2"; do
  rm -f "$work"/callgrind.out.*
  # Callgrind writes its counts at exit, which takes seconds: --stop-wait lets it.
  python3 benches/lb/run.py --no-build --lb-bin "$work/sip-lb" --stop-wait 90 --balancers "$bal" \
    --rate "$rate" --calls "$n" --reps 1 --sweep "" | grep -E "rep 0" >&2
  out=$(ls "$work"/callgrind.out.* | head -1)
  totals+=("$(awk '/^totals:/ {print $2}' "$out")")
done
echo "$bal: $(( (totals[1] - totals[0]) / (n2 - n1) )) instructions per call (callgrind, $n1 and $n2 calls at $rate calls/s)"
rm -rf "$work"
