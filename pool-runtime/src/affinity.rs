//! Keeping calls that share a key on one connection, for servers that tie
//! state to a connection (session-bound streams, connection-scoped caches).

use std::hash::{DefaultHasher, Hash, Hasher};

/// A key carried in a request's extensions: calls with the same key go to
/// the same connection for as long as that connection takes calls.
///
/// The first call with a key takes the least-loaded connection, as any call
/// does, and binds the key to it. Later calls with the key go there even
/// when its streams are all taken: they then wait in HTTP/2's own queue on
/// that connection, bounded by their deadline, rather than move. When the
/// connection breaks, drains or closes, the next call binds the key afresh.
/// Keys unused for `idle_timeout` are forgotten.
///
/// On an xDS pool a key never takes a call out of the cluster its route
/// sends it to (gRPC A28): the key is bound once in each cluster its calls
/// go to, and bound afresh when its endpoint leaves that cluster.
///
/// ```
/// use pooled_client::AffinityKey;
///
/// let mut request = tonic::Request::new(());
/// AffinityKey::new("session-42").attach(&mut request);
/// assert_eq!(request.extensions().get::<AffinityKey>(), Some(&AffinityKey::new("session-42")));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AffinityKey(u64);

impl AffinityKey {
    /// The key for `value`, such as a session or user ID; equal values give
    /// equal keys.
    pub fn new(value: impl Hash) -> Self {
        // SipHash with fixed keys: the same value maps to the same key in
        // every process, which keeps logs comparable.
        let mut hasher = DefaultHasher::new();
        value.hash(&mut hasher);
        Self(hasher.finish())
    }

    /// A key that is already a number.
    pub const fn from_u64(value: u64) -> Self {
        Self(value)
    }

    /// Puts the key in `request`'s extensions.
    pub fn attach<T>(self, request: &mut tonic::Request<T>) {
        request.extensions_mut().insert(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_values_give_equal_keys() {
        assert_eq!(AffinityKey::new("session-1"), AffinityKey::new("session-1"));
        assert_ne!(AffinityKey::new("session-1"), AffinityKey::new("session-2"));
        assert_eq!(AffinityKey::new(42u64), AffinityKey::new(42u64));
        assert_eq!(AffinityKey::from_u64(7), AffinityKey::from_u64(7));
    }
}
