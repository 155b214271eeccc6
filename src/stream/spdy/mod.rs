//! SPDY/3.1 server side for Kubernetes streaming (exec, attach, port-forward over an HTTP/1.1
//! connection upgraded with `Upgrade: SPDY/3.1`). The upgrade itself happens elsewhere; [`serve`] takes
//! the upgraded byte stream.

pub mod codec;
pub mod conn;
pub mod frame;
pub mod header;
mod reader;
mod shared;
pub mod stream;

pub use codec::{FrameReader, FrameWriter};
pub use conn::{serve, ConnHandle, Options};
pub use frame::{Frame, FrameError};
pub use header::{HeaderDecoder, HeaderEncoder, HeaderError, Headers};
pub use stream::{Stream, StreamReader, StreamWriter};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod conn_end_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod conn_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod frame_tests;
#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod header_tests;
