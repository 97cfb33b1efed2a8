"""A grpc.health.v1 server written with Python's grpcio, for interop tests.

Serves the standard health service (grpcio-health-checking) and nothing
else. Usage: health_server.py HOST:PORT SERVICE
The service starts NOT_SERVING. Each line on stdin, SERVING or NOT_SERVING,
sets the status of SERVICE and is acknowledged with "set STATUS" on stdout.
It prints "listening on HOST:PORT" once it accepts calls.
"""

import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


def main():
    addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"
    service = sys.argv[2] if len(sys.argv) > 2 else ""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    port = server.add_insecure_port(addr)
    server.start()
    host = addr.rsplit(":", 1)[0]
    print("listening on %s:%d" % (host, port), flush=True)
    for line in sys.stdin:
        status = line.strip()
        if status in ("SERVING", "NOT_SERVING"):
            servicer.set(service, getattr(health_pb2.HealthCheckResponse, status))
            print("set " + status, flush=True)
    server.stop(0)


if __name__ == "__main__":
    main()
