//! containerd's shim v2 Task API (`containerd.task.v2.Task` over [`ttrpc`](crate::ttrpc)):
//! the messages Berth sends and a typed client, and the Events service's `Forward`, which
//! a shim calls to publish its events.
//!
//! A berth-shim started with `--shim-v2` drives such a shim for its container (see the
//! shim binary's `serve::task`); berthd serves the Events service and, when a berth-shim
//! is gone, takes the container down through the Task API itself ([`take_down`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message;

use crate::ttrpc::{Client, Error};

pub const SERVICE: &str = "containerd.task.v2.Task";
pub const EVENTS_SERVICE: &str = "containerd.services.events.ttrpc.v1.Events";
/// The namespace Berth's containers have in every shim v2.
pub const NAMESPACE: &str = "berth";
/// What an exec's `spec` holds: an OCI process, as JSON.
pub const PROCESS_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Process";
/// What an update's `resources` hold: OCI Linux resources, as JSON.
pub const RESOURCES_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/LinuxResources";
/// The directory of a bundle that is the shim v2's own bundle (its cwd, config.json, the
/// FIFOs and the `address` file the shim writes).
pub const TASK_DIR: &str = "task";
/// The file in [`TASK_DIR`] where a shim v2's `start` leaves its address.
pub const ADDRESS_FILE: &str = "address";

const QUICK: Duration = Duration::from_secs(10);

#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "1")]
    pub type_url: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Timestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct Empty {}

#[derive(Clone, PartialEq, Message)]
pub struct CreateTaskRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub bundle: String,
    // 3: rootfs mounts; none: the bundle's root is already mounted.
    #[prost(bool, tag = "4")]
    pub terminal: bool,
    #[prost(string, tag = "5")]
    pub stdin: String,
    #[prost(string, tag = "6")]
    pub stdout: String,
    #[prost(string, tag = "7")]
    pub stderr: String,
}

/// `{id, exec_id}`: the request of Start, Delete, Wait and State.
#[derive(Clone, PartialEq, Message)]
pub struct ProcessRef {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
}

/// `{pid}`: the answer of Create and Start.
#[derive(Clone, PartialEq, Message)]
pub struct PidResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct DeleteResponse {
    #[prost(uint32, tag = "1")]
    pub pid: u32,
    #[prost(uint32, tag = "2")]
    pub exit_status: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct ExecProcessRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bool, tag = "3")]
    pub terminal: bool,
    #[prost(string, tag = "4")]
    pub stdin: String,
    #[prost(string, tag = "5")]
    pub stdout: String,
    #[prost(string, tag = "6")]
    pub stderr: String,
    #[prost(message, optional, tag = "7")]
    pub spec: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct KillRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub signal: u32,
    #[prost(bool, tag = "4")]
    pub all: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct CloseIoRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(bool, tag = "3")]
    pub stdin: bool,
}

#[derive(Clone, PartialEq, Message)]
pub struct ResizePtyRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub exec_id: String,
    #[prost(uint32, tag = "3")]
    pub width: u32,
    #[prost(uint32, tag = "4")]
    pub height: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct WaitResponse {
    #[prost(uint32, tag = "1")]
    pub exit_status: u32,
    #[prost(message, optional, tag = "2")]
    pub exited_at: Option<Timestamp>,
}

#[derive(Clone, PartialEq, Message)]
pub struct UpdateTaskRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub resources: Option<Any>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ShutdownRequest {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(bool, tag = "2")]
    pub now: bool,
}

/// The Events service's `Forward` request.
#[derive(Clone, PartialEq, Message)]
pub struct ForwardRequest {
    #[prost(message, optional, tag = "1")]
    pub envelope: Option<Envelope>,
}

#[derive(Clone, PartialEq, Message)]
pub struct Envelope {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<Timestamp>,
    #[prost(string, tag = "2")]
    pub namespace: String,
    #[prost(string, tag = "3")]
    pub topic: String,
    #[prost(message, optional, tag = "4")]
    pub event: Option<Any>,
}

/// A connection to a shim v2's Task service.
pub struct TaskClient(Client);

impl TaskClient {
    pub async fn connect(address: &Path) -> Result<TaskClient, Error> {
        Ok(TaskClient(Client::connect(address).await?))
    }

    async fn call<Q: Message, A: Message + Default>(
        &mut self,
        method: &str,
        req: &Q,
        timeout: Option<Duration>,
    ) -> Result<A, Error> {
        self.0.call(SERVICE, method, req, timeout).await
    }

    pub async fn create(&mut self, req: &CreateTaskRequest) -> Result<u32, Error> {
        let r: PidResponse = self.call("Create", req, Some(Duration::from_secs(60))).await?;
        Ok(r.pid)
    }

    pub async fn start(&mut self, id: &str, exec_id: &str) -> Result<u32, Error> {
        let r: PidResponse = self
            .call("Start", &process(id, exec_id), Some(Duration::from_secs(60)))
            .await?;
        Ok(r.pid)
    }

    /// Waits (without limit) for the process to exit; its exit status.
    pub async fn wait(&mut self, id: &str, exec_id: &str) -> Result<u32, Error> {
        let r: WaitResponse = self.call("Wait", &process(id, exec_id), None).await?;
        Ok(r.exit_status)
    }

    pub async fn kill(&mut self, id: &str, exec_id: &str, signal: u32, all: bool) -> Result<(), Error> {
        let req = KillRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            signal,
            all,
        };
        self.call::<_, Empty>("Kill", &req, Some(QUICK)).await.map(drop)
    }

    pub async fn exec(&mut self, req: &ExecProcessRequest) -> Result<(), Error> {
        self.call::<_, Empty>("Exec", req, Some(QUICK)).await.map(drop)
    }

    /// Ends the process's stdin (the shim holds the stdin FIFO open until told).
    pub async fn close_stdin(&mut self, id: &str, exec_id: &str) -> Result<(), Error> {
        let req = CloseIoRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            stdin: true,
        };
        self.call::<_, Empty>("CloseIO", &req, Some(QUICK)).await.map(drop)
    }

    pub async fn resize(&mut self, id: &str, exec_id: &str, width: u32, height: u32) -> Result<(), Error> {
        let req = ResizePtyRequest {
            id: id.into(),
            exec_id: exec_id.into(),
            width,
            height,
        };
        self.call::<_, Empty>("ResizePty", &req, Some(QUICK)).await.map(drop)
    }

    pub async fn update(&mut self, id: &str, resources_json: Vec<u8>) -> Result<(), Error> {
        let req = UpdateTaskRequest {
            id: id.into(),
            resources: Some(Any {
                type_url: RESOURCES_TYPE_URL.into(),
                value: resources_json,
            }),
        };
        self.call::<_, Empty>("Update", &req, Some(QUICK)).await.map(drop)
    }

    pub async fn delete(&mut self, id: &str, exec_id: &str) -> Result<DeleteResponse, Error> {
        self.call("Delete", &process(id, exec_id), Some(Duration::from_secs(30)))
            .await
    }

    /// Asks the shim to exit once it serves no container; it may close the connection
    /// instead of answering.
    pub async fn shutdown(&mut self, id: &str) {
        let req = ShutdownRequest {
            id: id.into(),
            now: false,
        };
        let _ = self.call::<_, Empty>("Shutdown", &req, Some(QUICK)).await;
    }
}

fn process(id: &str, exec_id: &str) -> ProcessRef {
    ProcessRef {
        id: id.into(),
        exec_id: exec_id.into(),
    }
}

/// The shim address a shim v2's `start` printed: a `unix://` address, or (newer shims) a
/// JSON document with an `address` field.
pub fn parse_start_output(out: &str) -> Option<PathBuf> {
    let out = out.trim();
    let address = if out.starts_with('{') {
        serde_json::from_str::<serde_json::Value>(out)
            .ok()?
            .get("address")?
            .as_str()?
            .to_string()
    } else {
        out.lines().last()?.trim().to_string()
    };
    let path = address.strip_prefix("unix://").unwrap_or(&address);
    (path.starts_with('/') || path.starts_with('@')).then(|| PathBuf::from(path))
}

/// The address of the shim v2 serving a bundle's container, from the file its `start`
/// wrote in the task directory.
pub fn address(bundle: &Path) -> Option<PathBuf> {
    parse_start_output(&std::fs::read_to_string(bundle.join(TASK_DIR).join(ADDRESS_FILE)).ok()?)
}

/// Ends container `id` through its shim v2 when its berth-shim is gone: SIGKILL to all its
/// processes, a wait of up to 5 s, delete, shutdown. False when no shim answered.
pub async fn take_down(bundle: &Path, id: &str) -> bool {
    let Some(addr) = address(bundle) else { return false };
    let Ok(mut c) = TaskClient::connect(&addr).await else {
        return false;
    };
    let _ = c.kill(id, "", 9, true).await;
    if let Ok(mut w) = TaskClient::connect(&addr).await {
        let _ = tokio::time::timeout(Duration::from_secs(5), w.wait(id, "")).await;
    }
    let _ = c.delete(id, "").await;
    c.shutdown(id).await;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_output_forms() {
        assert_eq!(
            parse_start_output("unix:///run/containerd/s/abc\n"),
            Some(PathBuf::from("/run/containerd/s/abc"))
        );
        assert_eq!(
            parse_start_output(r#"{"version":2,"address":"unix:///run/x.sock","protocol":"ttrpc"}"#),
            Some(PathBuf::from("/run/x.sock"))
        );
        assert_eq!(parse_start_output(""), None);
        assert_eq!(parse_start_output("relative/path"), None);
    }

    #[test]
    fn messages_use_the_task_api_field_numbers() {
        // KillRequest{id: "c", signal: 9, all: true}: field 1 string, 3 varint, 4 varint.
        let k = KillRequest {
            id: "c".into(),
            exec_id: String::new(),
            signal: 9,
            all: true,
        };
        assert_eq!(k.encode_to_vec(), [0x0a, 1, b'c', 0x18, 9, 0x20, 1]);
        // CreateTaskRequest's stdio fields are 5, 6 and 7 (3 is rootfs, left empty).
        let c = CreateTaskRequest {
            stdout: "o".into(),
            terminal: true,
            ..Default::default()
        };
        assert_eq!(c.encode_to_vec(), [0x20, 1, 0x32, 1, b'o']);
        let w = WaitResponse::decode([0x08, 137, 1].as_slice()).expect("decode");
        assert_eq!(w.exit_status, 137);
    }
}
