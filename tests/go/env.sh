# The Go peers' module and build caches, under target/go where the tests
# and benchmarks look for them. Sourced from tests/go (by .ci/run and
# scripts/bench-hpack-path.sh).
export GOPATH="$PWD/../../target/go/path" GOMODCACHE="$PWD/../../target/go/path/pkg/mod"
export GOCACHE="$PWD/../../target/go/cache" GOFLAGS=-modcacherw
