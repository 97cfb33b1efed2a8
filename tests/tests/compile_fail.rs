//! Misuse of `#[pooled_client]` is a compile error that points at the token
//! at fault and says what to write instead; `ui/*.stderr` holds each message.

#[test]
fn attribute_misuse_points_at_the_mistake() {
    trybuild::TestCases::new().compile_fail("ui/*.rs");
}
