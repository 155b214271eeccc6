//! Single-use, expiring tokens that name a pending streaming request in a URL.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;

/// At most this many requests wait for their client at once (kubelet's cache holds 1000).
pub const MAX_PENDING: usize = 1000;

pub struct Tokens<T> {
    ttl: Duration,
    pending: Mutex<HashMap<String, (T, Instant)>>,
}

impl<T> Tokens<T> {
    pub fn new(ttl: Duration) -> Self {
        Tokens {
            ttl,
            pending: Mutex::new(HashMap::new()),
        }
    }

    /// Stores a request and returns its new token; `None` when too many are pending.
    pub fn insert(&self, request: T) -> Option<String> {
        let token = new_token();
        let now = Instant::now();
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        if pending.len() >= MAX_PENDING {
            return None;
        }
        pending.insert(token.clone(), (request, now));
        Some(token)
    }

    /// Takes the request of a token: each token works once, and only before it expires.
    pub fn take(&self, token: &str) -> Option<T> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        let (request, at) = pending.remove(token)?;
        (at.elapsed() < self.ttl).then_some(request)
    }
}

/// 192 random bits, URL-safe.
fn new_token() -> String {
    let mut bytes = [0u8; 24];
    let mut filled = 0;
    while filled < bytes.len() {
        match rustix::rand::getrandom(&mut bytes[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => {}
            // getrandom cannot fail on a supported kernel once the pool is ready; blocking
            // until it is, as the call does, is the right behaviour.
            Err(_) => {}
        }
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_and_expiry() {
        let t = Tokens::new(Duration::from_millis(50));
        let a = t.insert(1).expect("room");
        let b = t.insert(2).expect("room");
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert_eq!(t.take(&a), Some(1));
        assert_eq!(t.take(&a), None, "reused");
        assert_eq!(t.take("nope"), None);
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.take(&b), None, "expired");
    }

    #[test]
    fn bounded() {
        let t = Tokens::new(Duration::from_secs(60));
        for i in 0..MAX_PENDING {
            assert!(t.insert(i).is_some());
        }
        assert!(t.insert(0).is_none());
    }
}
