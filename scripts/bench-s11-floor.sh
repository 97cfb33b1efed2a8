#!/usr/bin/env bash
# S11's client cost against its floor, counted rather than timed: the
# instructions and L1 data-cache misses one call costs the pool and tonic's
# generated client on one h2 connection with the pool's write batching and
# nothing else ("tonic on h2 alone, batched" in S11), on grpc-go's benchmark
# server. Wall-clock CPU on this 2-core host moves by 10 % run to run; these
# counts move by about 1 %, so they show what a change to the call path does
# to the pool's distance from the floor.
#
# callgrind with its cache simulation (the cache of the machine that runs
# it), the client on core 0 and the server on core 1; each load runs for 2 s
# and 6 s and the difference is divided by the difference in calls, which
# leaves start-up and connection set-up out.
#
#   bash scripts/bench-s11-floor.sh [callers ...]     (default: 1 64)
set -euo pipefail
cd "$(dirname "$0")/.."
callers=("$@")
[ ${#callers[@]} -gt 0 ] || callers=(1 64)

. scripts/executable.sh
bench=$(cargo bench -p pooled-client-examples --bench pool --no-run --message-format=json 2>/dev/null |
  executable pool)
server=target/go/bin/benchmark-server
if [ ! -x "$server" ]; then
  (cd tests/go && . ./env.sh && go build -o ../../$server google.golang.org/grpc/benchmark/server)
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
taskset -c 1 "$server" -port "$port" -test_name s11-floor > /dev/null 2>&1 &
pid=$!
work=$(mktemp -d)
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do
  python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$port" 2> /dev/null && break
  sleep 0.1
done

# load callers seconds -> "calls instructions misses" of one run
run() {
  local profile="$work/$1.$2.$3"
  local calls
  calls=$(taskset -c 0 valgrind --tool=callgrind --cache-sim=yes --callgrind-out-file="$profile" \
    "$bench" --load "$1" --callers "$2" --seconds "$3" --uri "http://127.0.0.1:$port" 2> /dev/null |
    grep -o '^[a-z0-9-]*: [0-9]* calls' | awk '{print $2}')
  callgrind_annotate --show=Ir,D1mr,D1mw "$profile" 2> /dev/null |
    awk -v calls="$calls" '/PROGRAM TOTALS/ { gsub(",", ""); print calls, $1, $3 + $5 }'
}

printf '%-8s %-26s %14s %14s\n' callers client instructions/call 'L1 misses/call'
for c in "${callers[@]}"; do
  for load in grpcgo-tonic-h2-batched grpcgo-pool; do
    read -r c2 i2 m2 <<< "$(run "$load" "$c" 2)"
    read -r c6 i6 m6 <<< "$(run "$load" "$c" 6)"
    printf '%-8s %-26s %14d %14d\n' "$c" "$load" $(((i6 - i2) / (c6 - c2))) $(((m6 - m2) / (c6 - c2)))
  done
done | tee "$work/table"
python3 - "$work/table" <<'PY'
import sys
rows = [line.split() for line in open(sys.argv[1])]
for floor, pool in zip(rows[::2], rows[1::2]):
    print(f"C = {pool[0]}: the pool {int(pool[2]) / int(floor[2]):.2f}x the floor's instructions, "
          f"{int(pool[3]) / int(floor[3]):.2f}x its L1 data misses")
PY
