#!/usr/bin/env bash
# S3 paired against an earlier commit: instructions per unary call of the
# pool's client (callgrind, 3,000 calls minus 1,000), the commit given and
# the working tree, against one bench_server, in alternating rounds.
#
#   bash scripts/bench-s3-paired.sh 082edb5 [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
base=${1:?usage: bench-s3-paired.sh COMMIT [ROUNDS]}
rounds=${2:-2}

. scripts/executable.sh
build() { cargo bench -p pooled-client-examples --bench pool --no-run --message-format=json 2>/dev/null; }

worktree=$(mktemp -d)
git worktree add -q --detach "$worktree" "$base"
trap 'git worktree remove --force "$worktree"' EXIT
before=$(cd "$worktree" && CARGO_TARGET_DIR="$PWD/../s3-base-target" build | executable pool)
after=$(build | executable pool)
server=$(build | executable bench_server)

out=$(mktemp)
"$server" > "$out" &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$out"; git worktree remove --force "$worktree"' EXIT
for _ in $(seq 50); do grep -q '^open ' "$out" && break; sleep 0.1; done
uri="http://$(grep '^open ' "$out" | cut -d' ' -f2)"

count() { # binary calls -> instructions
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$1" --s3-client pool --calls "$2" --uri "$uri" 2>&1 |
    grep -o 'Collected : [0-9]*' | grep -o '[0-9]*'
}
per_call() { echo $(( ($(count "$1" 3000) - $(count "$1" 1000)) / 2000 )); }

echo "| round | $base | working tree | ratio |"
echo "|---|---:|---:|---:|"
for round in $(seq "$rounds"); do
  b=$(per_call "$before"); a=$(per_call "$after")
  echo "| $round | $b | $a | $(python3 -c "print(f'{$a/$b:.3f}x')") |"
done
