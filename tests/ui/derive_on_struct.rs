use pooled_client::{pooled_client, Unary};
use pooled_client_tests::helloworld::{greeter_client, HelloReply, HelloRequest};

#[pooled_client(client = greeter_client::GreeterClient)]
#[derive(Clone)]
pub struct PooledGreeter {
    say_hello: Unary<HelloRequest, HelloReply>,
}

fn main() {}
