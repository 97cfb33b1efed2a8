"""A helloworld.Greeter server written with Python's grpcio, for interop tests.

It serves SayHello (unary) and SayHelloStream (server streaming) with the
messages of tests/proto/helloworld.proto, encoded by hand so that no
protobuf code generator is needed. Usage: greeter_server.py [HOST:PORT]
It prints "listening on HOST:PORT" once it accepts calls.
"""

import sys
import time
from concurrent import futures

import grpc

from protowire import encode_varint, read_varint


def decode_request(data):
    """HelloRequest: name (1, string), delay_ms (2, uint32), count (3, uint32)."""
    fields = {1: "", 2: 0, 3: 0}
    pos = 0
    while pos < len(data):
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 2:
            length, pos = read_varint(data, pos)
            fields[number] = data[pos:pos + length].decode()
            pos += length
        elif wire == 0:
            fields[number], pos = read_varint(data, pos)
        else:
            raise ValueError("unexpected wire type %d" % wire)
    return fields


def encode_reply(message):
    """HelloReply: message (1, string)."""
    raw = message.encode()
    return b"\x0a" + encode_varint(len(raw)) + raw


def say_hello(request, context):
    if request[2]:
        time.sleep(request[2] / 1000.0)
    return "Hello %s" % request[1]


def say_hello_stream(request, context):
    for i in range(request[3]):
        yield "Hello %s #%d" % (request[1], i)


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"
    handlers = {
        "SayHello": grpc.unary_unary_rpc_method_handler(
            say_hello, request_deserializer=decode_request, response_serializer=encode_reply),
        "SayHelloStream": grpc.unary_stream_rpc_method_handler(
            say_hello_stream, request_deserializer=decode_request, response_serializer=encode_reply),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("helloworld.Greeter", handlers),))
    port = server.add_insecure_port(address)
    server.start()
    host = address.rsplit(":", 1)[0]
    print("listening on %s:%d" % (host, port), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
