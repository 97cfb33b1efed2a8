//! S12: an interceptor on two threads. Every intercepted call runs the
//! pool's `SharedInterceptor`; this measures what running it costs per
//! call, with one thread and with two threads at once (S4's shape), against
//! the same work done without an interceptor and against the form it
//! replaced (one `Mutex` around the interceptor, shared by every call).

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use pooled_client::SharedInterceptor;
use tonic::metadata::MetadataValue;

use crate::Context;
use crate::measure::median;
use crate::scenarios::{Section, ns_per_op};

/// What each interceptor does: the usual one, a bearer token.
fn authorize(
    mut request: tonic::Request<()>,
    token: &MetadataValue<tonic::metadata::Ascii>,
) -> tonic::Request<()> {
    request
        .metadata_mut()
        .insert("authorization", token.clone());
    request
}

pub(crate) fn s12(ctx: &Context, cores: usize) -> Section {
    const N: u64 = 1_000_000;
    let token: MetadataValue<_> = "Bearer 0123456789abcdef".parse().expect("token");
    let shared = {
        let token = token.clone();
        SharedInterceptor::new(move |request| Ok(authorize(request, &token)))
    };
    let function = {
        let token = token.clone();
        SharedInterceptor::from_fn(move |request| Ok(authorize(request, &token)))
    };
    let locked: Arc<Mutex<dyn tonic::service::Interceptor + Send>> = {
        let token = token.clone();
        Arc::new(Mutex::new(move |request| Ok(authorize(request, &token))))
    };
    let message = || tonic::Request::new(());
    let thread_counts: &[usize] = if cores >= 2 { &[1, 2] } else { &[1] };
    let mut rows = Vec::new();
    for &threads in thread_counts {
        let (mut plain, mut ours, mut from_fn, mut mutex) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ctx.rounds {
            plain.push(ns_per_op(threads, N, || {
                std::hint::black_box(authorize(message(), &token));
            }));
            ours.push(ns_per_op(threads, N, || {
                std::hint::black_box(shared.intercept(message()).expect("intercepted"));
            }));
            from_fn.push(ns_per_op(threads, N, || {
                std::hint::black_box(function.intercept(message()).expect("intercepted"));
            }));
            mutex.push(ns_per_op(threads, N, || {
                let intercepted = locked.lock().expect("lock").call(message());
                std::hint::black_box(intercepted.expect("intercepted"));
            }));
        }
        rows.push((
            threads,
            median(plain),
            median(ours),
            median(from_fn),
            median(mutex),
        ));
    }
    let mut body = format!(
        "Median over {} rounds of nanoseconds per call, per thread, every thread at once (2 threads on 2 \
         cores): a request given a bearer token without an interceptor, by the pool's `SharedInterceptor` \
         (`new`: a copy of the closure per thread, each behind its own lock; `from_fn`: the closure as it \
         is), and by the form it replaced (one `Mutex` around the interceptor, every call through it). A \
         whole call costs 10 to 50 µs of CPU (S3, S11).\n\n\
         | threads | no interceptor | `SharedInterceptor::new` | `SharedInterceptor::from_fn` | one `Mutex` |\n|---:|---:|---:|---:|---:|\n",
        ctx.rounds
    );
    for (threads, plain, ours, from_fn, mutex) in &rows {
        let _ = writeln!(
            body,
            "| {threads} | {plain:.1} ns | {ours:.1} ns | {from_fn:.1} ns | {mutex:.1} ns |"
        );
    }
    let mut targets = Vec::new();
    if let Some((_, plain, ours, _, mutex)) = rows.iter().find(|r| r.0 == 2) {
        let (added, locked) = (ours - plain, mutex - plain);
        targets.push((
            format!(
                "S12 2 threads: the interceptor adds at most 100 ns to a call ({added:.0} ns; one Mutex added {locked:.0} ns)"
            ),
            added <= 100.0,
        ));
    }
    Section {
        title: "S12: an interceptor on two threads".into(),
        body,
        targets,
    }
}
