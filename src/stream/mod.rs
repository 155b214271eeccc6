//! The streaming server behind `Exec`, `Attach` and `PortForward`: those RPCs return a
//! URL here with a single-use token that expires; the client (kubelet's proxy, crictl,
//! kubectl) upgrades the HTTP request to SPDY/3.1 or WebSocket and the session runs.
//!
//! - [`server`]: HTTP/1.1 (optionally TLS), token check, protocol negotiation, upgrade;
//! - [`session`]: one exec/attach as streams, whatever the transport;
//! - [`exec`], [`attach`], [`portforward`]: what runs over a session;
//! - [`spdy`], [`ws`]: the transports, implemented here (no maintained Rust SPDY server
//!   exists, and a small WebSocket core keeps the dependency tree lean).

pub mod attach;
pub mod exec;
pub mod portforward;
pub mod server;
pub mod session;
pub mod spdy;
pub mod status;
pub mod tokens;
pub mod tunnel;
pub mod ws;

/// A request waiting for its client.
#[derive(Debug, Clone)]
pub enum Pending {
    Exec(exec::ExecRequest),
    Attach(attach::AttachRequest),
    PortForward(portforward::PortForwardRequest),
}

impl Pending {
    /// The URL path segment of this kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Pending::Exec(_) => "exec",
            Pending::Attach(_) => "attach",
            Pending::PortForward(_) => "portforward",
        }
    }
}

pub use server::StreamServer;
