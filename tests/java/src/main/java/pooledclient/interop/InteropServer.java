package pooledclient.interop;

import com.google.protobuf.ByteString;
import com.google.protobuf.Message;
import grpc.testing.Test.Empty;
import grpc.testing.Test.EchoStatus;
import grpc.testing.Test.Payload;
import grpc.testing.Test.ResponseParameters;
import grpc.testing.Test.SimpleRequest;
import grpc.testing.Test.SimpleResponse;
import grpc.testing.Test.StreamingInputCallRequest;
import grpc.testing.Test.StreamingInputCallResponse;
import grpc.testing.Test.StreamingOutputCallRequest;
import grpc.testing.Test.StreamingOutputCallResponse;
import io.grpc.Context;
import io.grpc.Contexts;
import io.grpc.ForwardingServerCall;
import io.grpc.Metadata;
import io.grpc.MethodDescriptor;
import io.grpc.Server;
import io.grpc.ServerCall;
import io.grpc.ServerCallHandler;
import io.grpc.ServerInterceptor;
import io.grpc.ServerInterceptors;
import io.grpc.ServerServiceDefinition;
import io.grpc.Status;
import io.grpc.netty.shaded.io.grpc.netty.NettyServerBuilder;
import io.grpc.protobuf.ProtoUtils;
import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.ServerCalls;
import io.grpc.stub.StreamObserver;
import java.net.InetSocketAddress;
import java.util.concurrent.TimeUnit;

/**
 * grpc.testing.TestService on grpc-java's Netty server, written to gRPC's interop server
 * description (doc/interop-test-descriptions.md): EmptyCall, UnaryCall, StreamingOutputCall,
 * StreamingInputCall and FullDuplexCall, with status and metadata echoing; UnimplementedCall and
 * UnimplementedService are left out, so grpc-java answers UNIMPLEMENTED.
 *
 * <p>For each streaming call it prints "begin METHOD" when the call reaches its handler, then
 * "ending METHOD clean" (the client said it was done) or "ending METHOD cancelled" (the client
 * cancelled), as the Python peer does. Usage: {@code java -jar interop-server.jar [PORT
 * [MAX_CALLS_PER_CONNECTION]]}; it prints "listening on 127.0.0.1:PORT" once it accepts calls.
 */
public final class InteropServer {
  private static final String SERVICE = "grpc.testing.TestService";

  private static final Metadata.Key<String> ECHO_INITIAL =
      Metadata.Key.of("x-grpc-test-echo-initial", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<byte[]> ECHO_TRAILING =
      Metadata.Key.of("x-grpc-test-echo-trailing-bin", Metadata.BINARY_BYTE_MARSHALLER);

  private static final Metadata.Key<String> MESSAGE_ENCODING =
      Metadata.Key.of("grpc-encoding", Metadata.ASCII_STRING_MARSHALLER);

  /**
   * Whether the call's request came compressed: its {@code grpc-encoding} names a compressor.
   * grpc-java's handlers do not see a message's own compressed flag, so a call's messages count
   * as compressed when its header says they may be (a client that compresses sends every
   * message compressed, as tonic's does).
   */
  private static final Context.Key<Boolean> REQUEST_COMPRESSED = Context.key("request-compressed");

  private InteropServer() {}

  public static void main(String[] args) throws Exception {
    int port = args.length > 0 ? Integer.parseInt(args[0]) : 0;
    NettyServerBuilder builder =
        NettyServerBuilder.forAddress(new InetSocketAddress("127.0.0.1", port))
            .addService(
                ServerInterceptors.intercept(service(), new EchoMetadata(), new Compression()));
    if (args.length > 1) {
      builder.maxConcurrentCallsPerConnection(Integer.parseInt(args[1]));
    }
    Server server = builder.build().start();
    report("listening on 127.0.0.1:" + server.getPort());
    server.awaitTermination();
  }

  private static synchronized void report(String line) {
    System.out.println(line);
    System.out.flush();
  }

  private static <Req extends Message, Resp extends Message> MethodDescriptor<Req, Resp> method(
      String name, MethodDescriptor.MethodType type, Req request, Resp response) {
    return MethodDescriptor.<Req, Resp>newBuilder()
        .setType(type)
        .setFullMethodName(MethodDescriptor.generateFullMethodName(SERVICE, name))
        .setRequestMarshaller(ProtoUtils.marshaller(request))
        .setResponseMarshaller(ProtoUtils.marshaller(response))
        .build();
  }

  private static ServerServiceDefinition service() {
    return ServerServiceDefinition.builder(SERVICE)
        .addMethod(
            method(
                "EmptyCall",
                MethodDescriptor.MethodType.UNARY,
                Empty.getDefaultInstance(),
                Empty.getDefaultInstance()),
            ServerCalls.asyncUnaryCall(
                (Empty request, StreamObserver<Empty> responses) -> {
                  responses.onNext(Empty.getDefaultInstance());
                  responses.onCompleted();
                }))
        .addMethod(
            method(
                "UnaryCall",
                MethodDescriptor.MethodType.UNARY,
                SimpleRequest.getDefaultInstance(),
                SimpleResponse.getDefaultInstance()),
            ServerCalls.asyncUnaryCall(InteropServer::unaryCall))
        .addMethod(
            method(
                "StreamingOutputCall",
                MethodDescriptor.MethodType.SERVER_STREAMING,
                StreamingOutputCallRequest.getDefaultInstance(),
                StreamingOutputCallResponse.getDefaultInstance()),
            ServerCalls.asyncServerStreamingCall(InteropServer::streamingOutputCall))
        .addMethod(
            method(
                "StreamingInputCall",
                MethodDescriptor.MethodType.CLIENT_STREAMING,
                StreamingInputCallRequest.getDefaultInstance(),
                StreamingInputCallResponse.getDefaultInstance()),
            ServerCalls.asyncClientStreamingCall(InteropServer::streamingInputCall))
        .addMethod(
            method(
                "FullDuplexCall",
                MethodDescriptor.MethodType.BIDI_STREAMING,
                StreamingOutputCallRequest.getDefaultInstance(),
                StreamingOutputCallResponse.getDefaultInstance()),
            ServerCalls.asyncBidiStreamingCall(InteropServer::fullDuplexCall))
        .build();
  }

  private static Payload zeros(int size) {
    return Payload.newBuilder().setBody(ByteString.copyFrom(new byte[size])).build();
  }

  /** The status a request asks to be answered with, if it asks for one. */
  private static Status echoed(boolean has, EchoStatus echo) {
    if (!has || echo.getCode() == 0) {
      return null;
    }
    return Status.fromCodeValue(echo.getCode()).withDescription(echo.getMessage());
  }

  /** INVALID_ARGUMENT when a message expected compressed came uncompressed, as the case asks. */
  private static Status compressionMismatch(boolean expectCompressed) {
    if (expectCompressed && !REQUEST_COMPRESSED.get()) {
      return Status.INVALID_ARGUMENT.withDescription("expected a compressed request");
    }
    return null;
  }

  /** Compresses the call's responses with gzip (when the client accepts it). */
  private static void compressResponses(StreamObserver<?> responses, boolean compressed) {
    ServerCallStreamObserver<?> call = (ServerCallStreamObserver<?>) responses;
    call.setCompression("gzip");
    call.setMessageCompression(compressed);
  }

  private static void unaryCall(SimpleRequest request, StreamObserver<SimpleResponse> responses) {
    Status status = echoed(request.hasResponseStatus(), request.getResponseStatus());
    if (status == null) {
      status = compressionMismatch(request.getExpectCompressed().getValue());
    }
    if (status != null) {
      responses.onError(status.asRuntimeException());
      return;
    }
    if (request.hasResponseCompressed()) {
      compressResponses(responses, request.getResponseCompressed().getValue());
    }
    responses.onNext(
        SimpleResponse.newBuilder().setPayload(zeros(request.getResponseSize())).build());
    responses.onCompleted();
  }

  private static void streamingOutputCall(
      StreamingOutputCallRequest request,
      StreamObserver<StreamingOutputCallResponse> responses) {
    Status status = echoed(request.hasResponseStatus(), request.getResponseStatus());
    if (status != null) {
      responses.onError(status.asRuntimeException());
      return;
    }
    boolean compressing = false;
    for (ResponseParameters parameters : request.getResponseParametersList()) {
      pause(parameters.getIntervalUs());
      if (parameters.hasCompressed()) {
        if (!compressing) {
          compressing = true;
          compressResponses(responses, parameters.getCompressed().getValue());
        }
        ((ServerCallStreamObserver<?>) responses)
            .setMessageCompression(parameters.getCompressed().getValue());
      }
      responses.onNext(
          StreamingOutputCallResponse.newBuilder().setPayload(zeros(parameters.getSize())).build());
    }
    responses.onCompleted();
  }

  private static void pause(int micros) {
    if (micros > 0) {
      try {
        TimeUnit.MICROSECONDS.sleep(micros);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private static StreamObserver<StreamingInputCallRequest> streamingInputCall(
      StreamObserver<StreamingInputCallResponse> responses) {
    report("begin StreamingInputCall");
    return new StreamObserver<>() {
      private int size;
      private boolean failed;

      @Override
      public void onNext(StreamingInputCallRequest request) {
        if (failed) {
          return;
        }
        Status mismatch = compressionMismatch(request.getExpectCompressed().getValue());
        if (mismatch != null) {
          failed = true;
          responses.onError(mismatch.asRuntimeException());
          return;
        }
        size += request.getPayload().getBody().size();
      }

      @Override
      public void onError(Throwable error) {
        report("ending StreamingInputCall " + ending(error));
      }

      @Override
      public void onCompleted() {
        report("ending StreamingInputCall clean");
        if (failed) {
          return;
        }
        responses.onNext(
            StreamingInputCallResponse.newBuilder().setAggregatedPayloadSize(size).build());
        responses.onCompleted();
      }
    };
  }

  private static StreamObserver<StreamingOutputCallRequest> fullDuplexCall(
      StreamObserver<StreamingOutputCallResponse> responses) {
    report("begin FullDuplexCall");
    return new StreamObserver<>() {
      private boolean failed;

      @Override
      public void onNext(StreamingOutputCallRequest request) {
        if (failed) {
          return;
        }
        Status status = echoed(request.hasResponseStatus(), request.getResponseStatus());
        if (status != null) {
          failed = true;
          responses.onError(status.asRuntimeException());
          return;
        }
        for (ResponseParameters parameters : request.getResponseParametersList()) {
          pause(parameters.getIntervalUs());
          responses.onNext(
              StreamingOutputCallResponse.newBuilder()
                  .setPayload(zeros(parameters.getSize()))
                  .build());
        }
      }

      @Override
      public void onError(Throwable error) {
        report("ending FullDuplexCall " + ending(error));
      }

      @Override
      public void onCompleted() {
        report("ending FullDuplexCall clean");
        if (!failed) {
          responses.onCompleted();
        }
      }
    };
  }

  /** How a request stream that failed ended: cancelled by the client, or otherwise. */
  private static String ending(Throwable error) {
    return Status.fromThrowable(error).getCode() == Status.Code.CANCELLED ? "cancelled" : "failed";
  }

  /** Echoes x-grpc-test-echo-initial in the response headers, and the -bin one in trailers. */
  private static final class EchoMetadata implements ServerInterceptor {
    @Override
    public <Req, Resp> ServerCall.Listener<Req> interceptCall(
        ServerCall<Req, Resp> call, Metadata headers, ServerCallHandler<Req, Resp> next) {
      String initial = headers.get(ECHO_INITIAL);
      byte[] trailing = headers.get(ECHO_TRAILING);
      ServerCall<Req, Resp> echoing =
          new ForwardingServerCall.SimpleForwardingServerCall<>(call) {
            @Override
            public void sendHeaders(Metadata responseHeaders) {
              if (initial != null) {
                responseHeaders.put(ECHO_INITIAL, initial);
              }
              super.sendHeaders(responseHeaders);
            }

            @Override
            public void close(Status status, Metadata trailers) {
              if (trailing != null) {
                trailers.put(ECHO_TRAILING, trailing);
              }
              super.close(status, trailers);
            }
          };
      return next.startCall(echoing, headers);
    }
  }

  /** Notes in the call's context whether its request came compressed. */
  private static final class Compression implements ServerInterceptor {
    @Override
    public <Req, Resp> ServerCall.Listener<Req> interceptCall(
        ServerCall<Req, Resp> call, Metadata headers, ServerCallHandler<Req, Resp> next) {
      String encoding = headers.get(MESSAGE_ENCODING);
      boolean compressed = encoding != null && !encoding.equals("identity");
      Context context = Context.current().withValue(REQUEST_COMPRESSED, compressed);
      return Contexts.interceptCall(context, call, headers, next);
    }
  }
}
