//! The response fuzzer's committed corpus, replayed (the fuzzer itself, with
//! random cases for a bounded time, is `cargo run -p pooled-client-tests
//! --bin fuzz_response`): every case ends with a status, panics nothing and
//! leaves no call counted.

use std::time::Duration;

use pooled_client_tests::fuzz;
use pooled_client_tests::support::bounded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_corpus_case_ends_with_a_status_and_no_panic() {
    fuzz::count_panics();
    let corpus = fuzz::corpus();
    assert!(
        corpus.len() >= 30,
        "the corpus is missing: {} cases",
        corpus.len()
    );
    bounded(Duration::from_secs(240), async {
        let mut failed = Vec::new();
        for (name, case) in &corpus {
            if let Err(error) = fuzz::run(case).await {
                failed.push(format!("{name}: {error}"));
            }
        }
        assert!(failed.is_empty(), "{failed:#?}");
    })
    .await;
}
