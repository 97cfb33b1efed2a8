// Command xdsclient is the reference the xDS tests compare the pool with:
// grpc-go 1.85's own xDS client (import _ "google.golang.org/grpc/xds"),
// unchanged, calling the tests' greeter servers through the control plane
// the bootstrap names (GRPC_XDS_BOOTSTRAP_CONFIG, as gRPC A27 reads it).
//
// It makes -calls unary calls of /helloworld.Greeter/SayHello from each of
// -callers goroutines (an empty HelloRequest: the servers answer at once),
// reads each answer's "server-port" header, and prints one JSON line:
//
//	{"ok": 2000, "errors": 0, "first_error": "", "ports": {"40123": 512, ...}, "seconds": 0.41}
//
// With -keys N, call i carries the header x-user: key-(i mod N), and the
// line also maps each key to the ports that answered it ("keys"); with
// -delay_ms D each call asks the server to take D ms; with -header
// name=value every call carries that header (for routes that match it).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	_ "google.golang.org/grpc/xds" // the xds:/// resolver and its balancers
)

// rawCodec sends and receives message bytes as they are.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// helloRequest is a HelloRequest with only delay_ms (field 2) set.
func helloRequest(delayMs uint64) []byte {
	if delayMs == 0 {
		return []byte{}
	}
	out := []byte{2 << 3}
	for delayMs >= 0x80 {
		out = append(out, byte(delayMs)|0x80)
		delayMs >>= 7
	}
	return append(out, byte(delayMs))
}

type result struct {
	OK         int                        `json:"ok"`
	Errors     int                        `json:"errors"`
	FirstError string                     `json:"first_error"`
	Ports      map[string]int             `json:"ports"`
	Seconds    float64                    `json:"seconds"`
	Keys       map[string]map[string]bool `json:"keys,omitempty"`
}

func main() {
	target := flag.String("target", "xds:///greeter", "the xDS target")
	calls := flag.Int("calls", 250, "calls per caller")
	callers := flag.Int("callers", 8, "concurrent callers")
	keys := flag.Int("keys", 0, "distinct x-user header values (0: no header)")
	delayMs := flag.Uint("delay_ms", 0, "the delay each call asks the server for (HelloRequest.delay_ms)")
	header := flag.String("header", "", "a header every call carries, name=value (empty: none)")
	flag.Parse()
	headerName, headerValue, withHeader := strings.Cut(*header, "=")

	conn, err := grpc.NewClient(*target,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()

	var mu sync.Mutex
	out := result{Ports: map[string]int{}}
	if *keys > 0 {
		out.Keys = map[string]map[string]bool{}
	}
	started := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < *callers; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			for i := 0; i < *calls; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				key := ""
				if *keys > 0 {
					key = fmt.Sprintf("key-%d", (c*(*calls)+i)%(*keys))
					ctx = metadata.AppendToOutgoingContext(ctx, "x-user", key)
				}
				if withHeader {
					ctx = metadata.AppendToOutgoingContext(ctx, headerName, headerValue)
				}
				var header metadata.MD
				request, reply := helloRequest(uint64(*delayMs)), []byte{}
				err := conn.Invoke(ctx, "/helloworld.Greeter/SayHello", &request, &reply,
					grpc.Header(&header), grpc.WaitForReady(true))
				cancel()
				mu.Lock()
				if err != nil {
					out.Errors++
					if out.FirstError == "" {
						out.FirstError = err.Error()
					}
				} else {
					out.OK++
					port := ""
					if ports := header.Get("server-port"); len(ports) > 0 {
						port = ports[0]
					}
					out.Ports[port]++
					if key != "" {
						if out.Keys[key] == nil {
							out.Keys[key] = map[string]bool{}
						}
						out.Keys[key][port] = true
					}
				}
				mu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	out.Seconds = time.Since(started).Seconds()
	line, _ := json.Marshal(out)
	fmt.Println(string(line))
}
