//! Restart policies of `berthctl run` containers (Docker's `--restart`), kept as the
//! container label `io.berth.restart` and enforced by berthd: after the container exits,
//! and again when berthd starts. kubelet's containers never carry it.

use std::time::Duration;

/// The label holding a container's policy.
pub const RESTART_LABEL: &str = "io.berth.restart";
/// The annotation counting restarts made by the policy since the last start by hand.
pub const RESTART_COUNT: &str = "io.berth.restart-count";

/// When a container that stopped is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    No,
    /// Whenever it exits; after a stop by request only when berthd starts again.
    Always,
    /// Whenever it exits, unless it was stopped by request.
    UnlessStopped,
    /// When it exits with a non-zero code, at most `max` times in a row (`None`: no limit).
    OnFailure { max: Option<u32> },
}

/// What brought the question up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Occasion {
    /// The container has just stopped.
    Exited,
    /// berthd has started and found it stopped.
    DaemonStart,
}

impl RestartPolicy {
    /// Docker's syntax: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(text: &str) -> Result<RestartPolicy, String> {
        let (name, count) = match text.split_once(':') {
            Some((name, count)) => (name, Some(count)),
            None => (text, None),
        };
        let policy = match name {
            "" | "no" => RestartPolicy::No,
            "always" => RestartPolicy::Always,
            "unless-stopped" => RestartPolicy::UnlessStopped,
            "on-failure" => {
                let max = count
                    .map(|c| c.parse::<u32>())
                    .transpose()
                    .map_err(|_| format!("restart policy {text:?}: the retry count must be a number"))?;
                return Ok(RestartPolicy::OnFailure {
                    max: max.filter(|&n| n > 0),
                });
            }
            _ => {
                return Err(format!(
                    "restart policy {text:?}: expected no, always, unless-stopped or on-failure[:N]"
                ))
            }
        };
        if count.is_some() {
            return Err(format!(
                "restart policy {text:?}: a retry count goes only with on-failure"
            ));
        }
        Ok(policy)
    }

    /// The policy recorded on a container's labels (none: `no`; unreadable: `no`, since
    /// berthctl checked it before the container was made).
    pub fn of(labels: &std::collections::BTreeMap<String, String>) -> RestartPolicy {
        labels
            .get(RESTART_LABEL)
            .and_then(|p| RestartPolicy::parse(p).ok())
            .unwrap_or_default()
    }

    /// Whether a container that stopped with `exit_code` is started again; `restarts`
    /// made by the policy so far.
    pub fn restarts(self, exit_code: i32, stop_requested: bool, restarts: u32, at: Occasion) -> bool {
        match self {
            RestartPolicy::No => false,
            RestartPolicy::Always => !stop_requested || at == Occasion::DaemonStart,
            RestartPolicy::UnlessStopped => !stop_requested,
            RestartPolicy::OnFailure { max } => !stop_requested && exit_code != 0 && max.is_none_or(|m| restarts < m),
        }
    }
}

/// How long to wait before restart number `restarts + 1` of a container that ran for
/// `ran`: 100 ms, doubling with each quick failure up to a minute; a run of 10 s or more
/// starts the doubling over.
pub fn backoff(restarts: u32, ran: Duration) -> Duration {
    const FIRST: Duration = Duration::from_millis(100);
    if ran >= Duration::from_secs(10) {
        return FIRST;
    }
    (FIRST * 2u32.pow(restarts.min(10))).min(Duration::from_secs(60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_syntax_is_read_and_mistakes_named() {
        assert_eq!(RestartPolicy::parse("no"), Ok(RestartPolicy::No));
        assert_eq!(RestartPolicy::parse("always"), Ok(RestartPolicy::Always));
        assert_eq!(RestartPolicy::parse("unless-stopped"), Ok(RestartPolicy::UnlessStopped));
        assert_eq!(
            RestartPolicy::parse("on-failure"),
            Ok(RestartPolicy::OnFailure { max: None })
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3"),
            Ok(RestartPolicy::OnFailure { max: Some(3) })
        );
        for bad in ["sometimes", "always:3", "on-failure:x", "on-failure:-1"] {
            let err = RestartPolicy::parse(bad).expect_err(bad);
            assert!(err.contains(bad), "{err}");
        }
    }

    #[test]
    fn each_policy_decides_as_dockers_does() {
        use Occasion::*;
        let on_failure = RestartPolicy::OnFailure { max: Some(2) };
        let cases = [
            (RestartPolicy::No, 1, false, 0, Exited, false),
            (RestartPolicy::Always, 0, false, 9, Exited, true),
            (RestartPolicy::Always, 0, true, 0, Exited, false),
            (RestartPolicy::Always, 0, true, 0, DaemonStart, true),
            (RestartPolicy::UnlessStopped, 0, false, 0, DaemonStart, true),
            (RestartPolicy::UnlessStopped, 0, true, 0, DaemonStart, false),
            (on_failure, 0, false, 0, Exited, false),
            (on_failure, 137, false, 1, Exited, true),
            (on_failure, 137, false, 2, Exited, false),
            (on_failure, 1, true, 0, Exited, false),
        ];
        for (policy, code, requested, restarts, at, want) in cases {
            assert_eq!(
                policy.restarts(code, requested, restarts, at),
                want,
                "{policy:?} code {code} requested {requested} restarts {restarts} {at:?}"
            );
        }
    }

    #[test]
    fn quick_failures_back_off_up_to_a_minute() {
        let quick = Duration::from_millis(50);
        assert_eq!(backoff(0, quick), Duration::from_millis(100));
        assert_eq!(backoff(3, quick), Duration::from_millis(800));
        assert_eq!(backoff(30, quick), Duration::from_secs(60));
        assert_eq!(backoff(30, Duration::from_secs(10)), Duration::from_millis(100));
    }
}
