//! What the error stream carries at the end of an exec or attach: a Kubernetes `Status`
//! object (JSON) for protocol v4 and later, plain text before that.

use serde_json::json;

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Exit code 0 (or an attach that ended normally).
    Success,
    /// The command ran and exited with this non-zero code.
    Exit(i32),
    /// Berth could not run it.
    Failed(String),
}

/// The bytes to write on the error stream; empty means nothing is written.
pub fn encode(outcome: &Outcome, version: u8) -> Vec<u8> {
    if version < 4 {
        return match outcome {
            Outcome::Success => Vec::new(),
            Outcome::Exit(code) => {
                format!("command terminated with non-zero exit code: exit status {code}").into_bytes()
            }
            Outcome::Failed(msg) => msg.clone().into_bytes(),
        };
    }
    let status = match outcome {
        Outcome::Success => json!({"metadata": {}, "status": "Success"}),
        Outcome::Exit(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(msg) => json!({
            "metadata": {},
            "status": "Failure",
            "message": msg,
            "reason": "InternalError",
            "code": 500,
        }),
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_status_objects() {
        let ok: serde_json::Value = serde_json::from_slice(&encode(&Outcome::Success, 4)).expect("json");
        assert_eq!(ok["status"], "Success");
        let e: serde_json::Value = serde_json::from_slice(&encode(&Outcome::Exit(7), 5)).expect("json");
        assert_eq!(e["reason"], "NonZeroExitCode");
        assert_eq!(e["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(e["details"]["causes"][0]["message"], "7");
        assert!(encode(&Outcome::Success, 2).is_empty());
        assert_eq!(encode(&Outcome::Failed("boom".into()), 1), b"boom");
    }
}
