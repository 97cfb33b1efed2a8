#!/usr/bin/env bash
# What h2's literal `:path` costs grpc-go's server per request (S11's server
# CPU): grpc-go's HTTP/2 framer reading the same requests' HEADERS frames
# with the path indexed, as grpc-go's client sends it, and as a literal, as
# h2 (so tonic and this pool) sends it; interleaved rounds on core 1,
# medians. See tests/go/hpackcost.
#   bash scripts/bench-hpack-path.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/../tests/go"
rounds="${1:-5}"
. ./env.sh
go test -c -o ../../target/go/bin/hpackcost.test ./hpackcost
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for round in $(seq "$rounds"); do
  for path in Indexed Literal; do
    taskset -c 1 ../../target/go/bin/hpackcost.test -test.run '^$' \
      -test.bench "${path}Path" -test.benchtime 200000x | grep '^Benchmark' >> "$out"
  done
done
cat "$out"
python3 - "$out" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
def of(name, unit):
    return [float(r[r.index(unit) - 1]) for r in rows if r[0].startswith(name)]
indexed, literal = of("BenchmarkIndexedPath", "ns/op"), of("BenchmarkLiteralPath", "ns/op")
extra = statistics.median(l - i for i, l in zip(indexed, literal))
print(f"median ns/request: indexed {statistics.median(indexed):.0f}, literal "
      f"{statistics.median(literal):.0f}; the literal path costs {extra:.0f} ns more "
      f"(median of {len(indexed)} interleaved pairs), "
      f"{of('BenchmarkLiteralPath', 'allocs/op')[0] - of('BenchmarkIndexedPath', 'allocs/op')[0]:.0f} "
      f"allocation and {of('BenchmarkLiteralPath', 'bytes/request')[0] - of('BenchmarkIndexedPath', 'bytes/request')[0]:.0f} bytes more")
PY
