#!/usr/bin/env bash
# What `tcp_quickack` costs when calls are few: small unary calls from 1, 8
# and 64 callers, with and without it, interleaved; CPU per call of the
# client and of the benchmark server (Nagle on, as in docs/benchmarks.md,
# or off with BENCH_SERVER_NODELAY=1), from /proc around each run.
#   bash scripts/bench-quickack.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-3}"
cargo build -q --release -p pooled-client-examples --bench pool --bin bench_server
bench=$(ls -t target/release/deps/pool-* | grep -v '\.d$' | head -1)
ticks=$(getconf CLK_TCK)
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
out=$(mktemp)
taskset -c 1 target/release/bench_server > "$out" &
server=$!
trap 'kill $server' EXIT
until grep -q '^open ' "$out"; do sleep 0.1; done
uri="http://$(awk '/^open /{print $2; exit}' "$out")"
echo "| callers | tcp_quickack | calls/s | client CPU µs/call | server CPU µs/call |"
echo "|---:|---|---:|---:|---:|"
for callers in 1 8 64; do
  for round in $(seq "$rounds"); do
    for kind in pool pool-no-quickack; do
      server_before=$(cpu "$server")
      line=$( { /usr/bin/time -f '%U %S' taskset -c 0 "$bench" --load "$kind" \
        --callers "$callers" --seconds 2 --uri "$uri" ; } 2>&1 )
      server_after=$(cpu "$server")
      calls=$(echo "$line" | awk '/calls,/{print $2}')
      rate=$(echo "$line" | awk '/calls,/{print $4}')
      client=$(echo "$line" | tail -1 | awk '{print $1 + $2}')
      awk -v c="$callers" -v k="$kind" -v n="$calls" -v r="$rate" -v cl="$client" \
        -v s="$((server_after - server_before))" -v t="$ticks" 'BEGIN {
          q = (k == "pool") ? "on" : "off";
          printf "| %d | %s | %s | %.1f | %.1f |\n", c, q, r, cl * 1e6 / n, s / t * 1e6 / n }'
    done
  done
done
