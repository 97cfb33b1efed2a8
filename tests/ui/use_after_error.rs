// The client is used after a mistake in its declaration: the mistake is
// the one error, not a cascade of errors where the client is used.
use pooled_client::{pooled_client, ServerStreaming, Unary};
use pooled_client_tests::helloworld::{greeter_client, HelloReply, HelloRequest};

#[pooled_client(client = greeter_client::GreeterClient)]
#[derive(Clone)]
pub struct PooledGreeter {
    say_hello: Unary<HelloRequest, HelloReply>,
    say_hello_stream: ServerStreaming<HelloRequest, HelloReply>,
    say_goodbye: Unray<HelloRequest, HelloReply>,
}

async fn use_it(pool: pooled_client::Pool) -> Result<String, tonic::Status> {
    let greeter = PooledGreeter::new(pool).with_timeout(std::time::Duration::from_secs(1));
    let copy = greeter.clone();
    let reply = copy.say_hello(HelloRequest { name: "x".into(), ..Default::default() }).await?;
    let mut stream = greeter
        .say_hello_stream(HelloRequest { name: "y".into(), ..Default::default() })
        .await?
        .into_inner();
    let _ = stream.message().await?;
    let _: tonic::Response<HelloReply> = greeter.say_goodbye(HelloRequest::default()).await?;
    println!("{:?}", greeter);
    Ok(reply.into_inner().message)
}

fn main() {
    let _ = use_it;
}
