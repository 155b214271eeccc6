//! Wire to domain and back, for the API's RPCs.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use berth_proto::berth::v1 as pb;

use crate::error::Error;
use crate::image::archive::ArchiveFormat;
use crate::image::auth::AuthInput;
use crate::image::progress::{LayerState, Progress};

pub fn auth(a: &pb::Auth) -> AuthInput {
    AuthInput {
        username: a.username.clone(),
        password: a.password.clone(),
        auth: a.auth.clone(),
        server_address: a.server_address.clone(),
        identity_token: a.identity_token.clone(),
        registry_token: a.registry_token.clone(),
    }
}

/// A required name field: trimmed, not empty.
pub fn name<'a>(field: &str, value: &'a str) -> Result<&'a str, Error> {
    let v = value.trim();
    if v.is_empty() {
        return Err(Error::InvalidArgument(format!("{field} is empty")));
    }
    Ok(v)
}

pub fn format(f: i32) -> Result<ArchiveFormat, Error> {
    match pb::ArchiveFormat::try_from(f) {
        Ok(pb::ArchiveFormat::Docker) => Ok(ArchiveFormat::Docker),
        Ok(pb::ArchiveFormat::Oci) => Ok(ArchiveFormat::Oci),
        Err(_) => Err(Error::InvalidArgument(format!("unknown archive format {f}"))),
    }
}

pub fn layer_state(s: LayerState) -> pb::LayerState {
    match s {
        LayerState::Waiting => pb::LayerState::Waiting,
        LayerState::Downloading => pb::LayerState::Downloading,
        LayerState::Verifying => pb::LayerState::Verifying,
        LayerState::Unpacking => pb::LayerState::Unpacking,
        LayerState::Done => pb::LayerState::Done,
        LayerState::AlreadyPresent => pb::LayerState::AlreadyPresent,
    }
}

pub fn progress(p: &Progress) -> pb::PullImageEvent {
    pb::PullImageEvent {
        event: Some(pb::pull_image_event::Event::Layer(pb::LayerProgress {
            digest: p.digest.clone(),
            total_bytes: p.total,
            done_bytes: p.done,
            state: layer_state(p.state) as i32,
        })),
    }
}

/// Thins a pull's progress out for the wire: a layer's byte counts at most every
/// `interval`, but every change of state, and its last bytes, always.
pub struct Throttle {
    interval: Duration,
    last: Mutex<HashMap<String, (LayerState, Instant)>>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: Mutex::default(),
        }
    }

    /// Whether `p` should be sent now.
    pub fn admit(&self, p: &Progress, now: Instant) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let send = match last.get(&p.digest) {
            None => true,
            Some((state, at)) => *state != p.state || p.done >= p.total || now.duration_since(*at) >= self.interval,
        };
        if send {
            last.insert(p.digest.clone(), (p.state, now));
        }
        send
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(done: u64, state: LayerState) -> Progress {
        Progress {
            digest: "sha256:a".into(),
            total: 100,
            done,
            state,
        }
    }

    #[test]
    fn throttle_keeps_state_changes_and_the_last_bytes() {
        let t = Throttle::new(Duration::from_millis(100));
        let t0 = Instant::now();
        assert!(t.admit(&p(0, LayerState::Waiting), t0));
        assert!(t.admit(&p(0, LayerState::Downloading), t0), "state change");
        assert!(!t.admit(&p(10, LayerState::Downloading), t0 + Duration::from_millis(10)));
        assert!(!t.admit(&p(20, LayerState::Downloading), t0 + Duration::from_millis(50)));
        assert!(t.admit(&p(30, LayerState::Downloading), t0 + Duration::from_millis(120)));
        assert!(
            t.admit(&p(100, LayerState::Downloading), t0 + Duration::from_millis(121)),
            "last bytes"
        );
        assert!(t.admit(&p(100, LayerState::Done), t0 + Duration::from_millis(122)));
        // Another layer has its own clock.
        let other = Progress {
            digest: "sha256:b".into(),
            ..p(5, LayerState::Downloading)
        };
        assert!(t.admit(&other, t0 + Duration::from_millis(123)));
    }
}
