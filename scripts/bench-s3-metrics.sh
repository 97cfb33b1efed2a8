#!/usr/bin/env bash
# What gRPC A66's per-call metrics cost (S3, instructions per unary call,
# counted by callgrind): the pool built without feature `metrics`, with it
# and no recorder, and with it and a Prometheus recorder installed, against
# one bench_server. Results go to docs/benchmark-notes.md by hand.
#
#   bash scripts/bench-s3-metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/executable.sh
build() { cargo bench -p pooled-client-examples --bench pool --no-run --message-format=json "$@" 2>/dev/null; }
off=$(build | executable pool)
on=$(build --features metrics | executable pool)
server=$(build | executable bench_server)

out=$(mktemp)
"$server" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"' EXIT
for _ in $(seq 50); do grep -q '^open ' "$out" && break; sleep 0.1; done
uri="http://$(grep '^open ' "$out" | cut -d' ' -f2)"

count() { # binary kind calls -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" --s3-client "$2" --calls "$3" --uri "$uri" 2>&1 |
    grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
}
per_call() { echo $(( ($(count "$1" "$2" 3000) - $(count "$1" "$2" 1000)) / 2000 )); }

base=$(per_call "$off" pool)
compiled=$(per_call "$on" pool)
recorded=$(per_call "$on" pool-metrics)
echo "| build | instructions per call | vs without the feature |"
echo "|---|---:|---:|"
echo "| without feature \`metrics\` | $base | 1.000x |"
python3 -c "print(f'| feature \`metrics\`, no recorder | $compiled | {$compiled/$base:.3f}x |')"
python3 -c "print(f'| feature \`metrics\`, Prometheus recorder | $recorded | {$recorded/$base:.3f}x |')"
