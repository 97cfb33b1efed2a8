// Package hpackcost measures what h2's literal `:path` costs grpc-go's
// server (S11's server CPU, docs/benchmarks.md).
//
// h2, and so tonic and this pool, never adds a request's `:path` to HPACK's
// dynamic table (`Header::skip_value_index` in h2's `hpack/header.rs`), so
// every request carries the path as a Huffman-coded literal, which the
// server decodes and copies on every call. grpc-go's client indexes it and
// sends one byte. Both benchmarks read the same requests' HEADERS frames as
// grpc-go's server does (one `http2.Framer` per connection, its HPACK
// decoder kept); only the path's encoding differs.
//
//	cd tests/go && go test -run '^$' -bench . -benchtime 200000x -count 5 ./hpackcost
package hpackcost

import (
	"bytes"
	"io"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// requestsPerConnection is how many requests each benchmark connection reads.
const requestsPerConnection = 1000

// fields are the request headers the pool sends grpc-go's benchmark server
// (as grpc-go's `GODEBUG=http2debug=2` logs them), the path sent as a
// literal when literalPath is set.
func fields(literalPath bool) []hpack.HeaderField {
	return []hpack.HeaderField{
		{Name: ":method", Value: "POST"},
		{Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "127.0.0.1:50999"},
		// Sensitive: never indexed. h2 sends it "without indexing"; a
		// decoder does the same work for either.
		{Name: ":path", Value: "/grpc.testing.BenchmarkService/UnaryCall", Sensitive: literalPath},
		{Name: "te", Value: "trailers"},
		{Name: "content-type", Value: "application/grpc"},
		{Name: "user-agent", Value: "pooled-client/0.1.0"},
	}
}

// connection is the bytes of n requests' HEADERS frames on one connection.
func connection(n int, literalPath bool) []byte {
	var block, out bytes.Buffer
	encoder := hpack.NewEncoder(&block)
	framer := http2.NewFramer(&out, nil)
	for i := 0; i < n; i++ {
		block.Reset()
		for _, field := range fields(literalPath) {
			if err := encoder.WriteField(field); err != nil {
				panic(err)
			}
		}
		frame := http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: block.Bytes(), EndHeaders: true}
		if err := framer.WriteHeaders(frame); err != nil {
			panic(err)
		}
	}
	return out.Bytes()
}

func read(b *testing.B, literalPath bool) {
	wire := connection(requestsPerConnection, literalPath)
	b.ReportAllocs()
	b.ResetTimer()
	for read := 0; read < b.N; read += requestsPerConnection {
		framer := http2.NewFramer(io.Discard, bytes.NewReader(wire))
		framer.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
		for i := 0; i < requestsPerConnection; i++ {
			frame, err := framer.ReadFrame()
			if err != nil {
				b.Fatal(err)
			}
			if got := len(frame.(*http2.MetaHeadersFrame).Fields); got != 7 {
				b.Fatalf("%d header fields, want 7", got)
			}
		}
	}
	b.ReportMetric(float64(len(wire))/requestsPerConnection, "bytes/request")
}

// BenchmarkIndexedPath reads requests as grpc-go's client sends them.
func BenchmarkIndexedPath(b *testing.B) { read(b, false) }

// BenchmarkLiteralPath reads requests as h2 sends them.
func BenchmarkLiteralPath(b *testing.B) { read(b, true) }
