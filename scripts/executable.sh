# Sourced by the benchmark scripts: `cargo ... --message-format=json |
# executable NAME` prints the executable cargo built for target NAME.
executable() {
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[1] and m.get("executable"):
        print(m["executable"])' "$1" | tail -1
}
