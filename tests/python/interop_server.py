"""grpc.testing.TestService served by Python's grpcio, for interop tests.

Written to gRPC's interop server description (doc/interop-test-descriptions.md
in grpc/grpc): EmptyCall, UnaryCall, StreamingOutputCall, StreamingInputCall
and FullDuplexCall, with status and metadata echoing; UnimplementedCall and
UnimplementedService are left out, so grpcio answers UNIMPLEMENTED. Messages
are encoded by hand (tests/proto/interop/grpc/testing/test.proto), so no
protobuf code generator is needed.

For each streaming call it prints "begin METHOD" when the call reaches its
handler, then how its request stream ended, as
"ending METHOD clean" (the client said it was done), "ending METHOD cancelled"
(the client cancelled), "ending METHOD dropped" (the call ended while the
handler was not reading) or "ending METHOD failed", so that tests can check
what the server saw. Usage: interop_server.py [HOST:PORT]; it prints
"listening on HOST:PORT" once it accepts calls.
"""

import sys
import threading
import time
from concurrent import futures

import grpc

from protowire import decode, encode_varint, field, first


def payload_message(size):
    """A message whose field 1 is a Payload of `size` zero bytes."""
    return field(1, field(2, bytes(size)))


def payload_size(fields):
    """The body length of the Payload in field `fields`."""
    return len(first(decode(fields), 2, b""))


def echo_metadata(context):
    metadata = dict(context.invocation_metadata())
    initial = metadata.get("x-grpc-test-echo-initial")
    if initial is not None:
        context.send_initial_metadata((("x-grpc-test-echo-initial", initial),))
    trailing = metadata.get("x-grpc-test-echo-trailing-bin")
    if trailing is not None:
        context.set_trailing_metadata((("x-grpc-test-echo-trailing-bin", trailing),))


def echo_status(fields, context):
    """Ends the call with the status the request asks for; True if it did."""
    status = first(fields, 7, None)
    if status is None:
        return False
    status = decode(status)
    code = first(status, 1, 0)
    if code == 0:
        return False
    message = first(status, 2, b"").decode()
    context.abort(next(c for c in grpc.StatusCode if c.value[0] == code), message)
    return True


REPORT_LOCK = threading.Lock()


def say(line):
    """Writes one whole line: handlers run on many threads."""
    with REPORT_LOCK:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def report(method, ending):
    say("ending %s %s" % (method, ending))


def requests_of(method, request_iterator, context):
    """Yields the requests, and reports the call's start and how its
    request stream ended."""
    say("begin %s" % method)
    reported = []

    def end(ending):
        if not reported:
            reported.append(ending)
            report(method, ending)

    # A call abandoned while its handler waits elsewhere (a full-duplex
    # handler suspended at a response) ends without the request stream
    # ending: it is reported when the call terminates.
    context.add_callback(lambda: end("dropped"))
    try:
        for request in request_iterator:
            yield request
    except grpc.RpcError:
        end("cancelled" if not context.is_active() else "failed")
        raise
    # grpcio's request iterator can also stop when the client cancelled: its
    # read fails before the call is marked cancelled. A client that ended
    # its upload cleanly waits for the response, so the call stays active;
    # a cancelled call stops being active within moments.
    deadline = time.monotonic() + 1.0
    while context.is_active() and time.monotonic() < deadline:
        time.sleep(0.01)
    end("clean" if context.is_active() else "cancelled")


def empty_call(request, context):
    echo_metadata(context)
    return b""


def unary_call(request, context):
    echo_metadata(context)
    fields = decode(request)
    echo_status(fields, context)
    return payload_message(first(fields, 2, 0))


def responses_for(fields):
    """The responses a StreamingOutputCallRequest asks for, each after its
    interval."""
    for parameters in fields.get(2, []):
        parameters = decode(parameters)
        interval = first(parameters, 2, 0)
        if interval:
            time.sleep(interval / 1e6)
        yield payload_message(first(parameters, 1, 0))


def streaming_output_call(request, context):
    echo_metadata(context)
    fields = decode(request)
    echo_status(fields, context)
    yield from responses_for(fields)


def streaming_input_call(request_iterator, context):
    echo_metadata(context)
    total = 0
    for request in requests_of("StreamingInputCall", request_iterator, context):
        payload = first(decode(request), 1, None)
        if payload is not None:
            total += payload_size(payload)
    return encode_varint(1 << 3) + encode_varint(total)


def full_duplex_call(request_iterator, context):
    echo_metadata(context)
    for request in requests_of("FullDuplexCall", request_iterator, context):
        fields = decode(request)
        if echo_status(fields, context):
            return
        yield from responses_for(fields)


def main():
    address = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:0"
    raw = {"request_deserializer": None, "response_serializer": None}
    handlers = {
        "EmptyCall": grpc.unary_unary_rpc_method_handler(empty_call, **raw),
        "UnaryCall": grpc.unary_unary_rpc_method_handler(unary_call, **raw),
        "StreamingOutputCall": grpc.unary_stream_rpc_method_handler(streaming_output_call, **raw),
        "StreamingInputCall": grpc.stream_unary_rpc_method_handler(streaming_input_call, **raw),
        "FullDuplexCall": grpc.stream_stream_rpc_method_handler(full_duplex_call, **raw),
    }
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=64))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("grpc.testing.TestService", handlers),))
    port = server.add_insecure_port(address)
    server.start()
    host = address.rsplit(":", 1)[0]
    print("listening on %s:%d" % (host, port), flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
