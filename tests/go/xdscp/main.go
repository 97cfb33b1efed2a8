// Command xdscp is the test suite's xDS control plane: Envoy's
// go-control-plane v0.14.0 (its SnapshotCache and ADS server), fed by the
// tests.
//
// It listens for ADS on a loopback port (-port, or a free one) and prints
// "ADS <port>" on stdout; a test restarts a control plane on the port it had.
// With -tls_cert and -tls_key (PEM files) it serves ADS over TLS.
// Each line on stdin is a JSON snapshot:
//
//	{"version": "1", "resources": [{"type_url": "...", "value": "<base64>"}]}
//
// whose resources are serialized protobuf messages (as the tests build them
// with envoy-types); it replaces the snapshot of every node and answers "ok"
// or "error <reason>" on stdout (a resource that does not decode here is
// refused with its type named). Built from this module for issue 26's xDS
// tests: `go build -o ../../target/go/bin/xdscp ./xdscp`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	clusterservice "github.com/envoyproxy/go-control-plane/envoy/service/cluster/v3"
	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	endpointservice "github.com/envoyproxy/go-control-plane/envoy/service/endpoint/v3"
	listenerservice "github.com/envoyproxy/go-control-plane/envoy/service/listener/v3"
	routeservice "github.com/envoyproxy/go-control-plane/envoy/service/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// The resource types a snapshot may hold, registered for anypb.
	_ "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

type snapshotLine struct {
	Version   string `json:"version"`
	Resources []struct {
		TypeURL string `json:"type_url"`
		Value   []byte `json:"value"`
	} `json:"resources"`
}

// everyNode is the one key of the cache: every node gets the same snapshot.
const everyNode = "all"

type allNodes struct{}

func (allNodes) ID(*core.Node) string { return everyNode }

func main() {
	port := flag.Int("port", 0, "the loopback port to listen on (0: a free one)")
	tlsCert := flag.String("tls_cert", "", "the server's certificate (PEM) to serve TLS with")
	tlsKey := flag.String("tls_key", "", "the server's private key (PEM)")
	flag.Parse()
	snapshots := cache.NewSnapshotCache(true, allNodes{}, nil)
	srv := server.NewServer(context.Background(), snapshots, nil)
	listener, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var options []grpc.ServerOption
	if *tlsCert != "" {
		creds, err := credentials.NewServerTLSFromFile(*tlsCert, *tlsKey)
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		options = append(options, grpc.Creds(creds))
	}
	grpcServer := grpc.NewServer(options...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(grpcServer, srv)
	listenerservice.RegisterListenerDiscoveryServiceServer(grpcServer, srv)
	routeservice.RegisterRouteDiscoveryServiceServer(grpcServer, srv)
	clusterservice.RegisterClusterDiscoveryServiceServer(grpcServer, srv)
	endpointservice.RegisterEndpointDiscoveryServiceServer(grpcServer, srv)
	go func() { _ = grpcServer.Serve(listener) }()
	fmt.Printf("ADS %d\n", listener.Addr().(*net.TCPAddr).Port)

	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 64<<20)
	for lines.Scan() {
		if err := apply(snapshots, lines.Bytes()); err != nil {
			fmt.Println("error", err)
		} else {
			fmt.Println("ok")
		}
	}
	// stdin closed: the test is over.
	grpcServer.Stop()
}

func apply(snapshots cache.SnapshotCache, line []byte) error {
	var snap snapshotLine
	if err := json.Unmarshal(line, &snap); err != nil {
		return fmt.Errorf("snapshot line: %w", err)
	}
	byType := map[string][]types.Resource{}
	for _, r := range snap.Resources {
		resource, err := anypb.UnmarshalNew(&anypb.Any{TypeUrl: r.TypeURL, Value: r.Value}, proto.UnmarshalOptions{})
		if err != nil {
			return fmt.Errorf("resource of type %s: %w", r.TypeURL, err)
		}
		byType[r.TypeURL] = append(byType[r.TypeURL], resource)
	}
	snapshot, err := cache.NewSnapshot(snap.Version, byType)
	if err != nil {
		return err
	}
	return snapshots.SetSnapshot(context.Background(), everyNode, snapshot)
}
