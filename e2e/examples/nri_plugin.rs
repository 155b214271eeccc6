//! An NRI plugin for the e2e tests, installed in berthd's plugin directory and started by
//! berthd with its connection as an inherited socket (`NRI_PLUGIN_SOCKET`). It adds
//! `NRI_PLUGIN=<its name>` to the environment of every container created, and appends one
//! line per Synchronize (`sync <container id>...`) to the file its configuration names
//! (`out=PATH` in `<plugin config dir>/NN-name.conf`). With `noop` in its configuration it
//! subscribes to every pod and container event and changes nothing (what the NRI benchmark
//! connects). It exits when berthd closes the connection.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use berth::nri::plugin_client::{lifecycle_events, mask, PluginClient, Reply, TestPlugin};
use berth_proto::nri as api;

struct Plugin {
    name: String,
    out: Mutex<Option<PathBuf>>,
    noop: std::sync::atomic::AtomicBool,
}

impl Plugin {
    fn noop(&self) -> bool {
        self.noop.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl TestPlugin for Plugin {
    fn events(&self) -> u32 {
        if self.noop() {
            return lifecycle_events();
        }
        mask(&[api::Event::CreateContainer])
    }

    fn configure(&self, req: api::ConfigureRequest) -> Reply<()> {
        let noop = req.config.lines().any(|l| l.trim() == "noop");
        self.noop.store(noop, std::sync::atomic::Ordering::Relaxed);
        let out = req
            .config
            .lines()
            .find_map(|l| l.trim().strip_prefix("out="))
            .map(PathBuf::from);
        if let Ok(mut o) = self.out.lock() {
            *o = out;
        }
        Box::pin(async { Ok(()) })
    }

    fn synchronize(&self, req: api::SynchronizeRequest) -> Reply<api::SynchronizeResponse> {
        let out = self.out.lock().ok().and_then(|o| o.clone());
        let line: Vec<String> = req.containers.iter().map(|c| c.id.clone()).collect();
        let written = out.map(|path| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "sync {}", line.join(" ")))
        });
        Box::pin(async move {
            written.transpose().map_err(|e| e.to_string())?;
            Ok(api::SynchronizeResponse::default())
        })
    }

    fn create_container(&self, _req: api::CreateContainerRequest) -> Reply<api::CreateContainerResponse> {
        if self.noop() {
            return Box::pin(async { Ok(api::CreateContainerResponse::default()) });
        }
        let adjust = api::ContainerAdjustment {
            env: vec![api::KeyValue {
                key: "NRI_PLUGIN".into(),
                value: self.name.clone(),
            }],
            ..Default::default()
        };
        Box::pin(async move {
            Ok(api::CreateContainerResponse {
                adjust: Some(adjust),
                ..Default::default()
            })
        })
    }
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set: this plugin is started by berthd"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let fd: i32 = env("NRI_PLUGIN_SOCKET")?
        .parse()
        .map_err(|e| format!("NRI_PLUGIN_SOCKET: {e}"))?;
    let (name, index) = (env("NRI_PLUGIN_NAME")?, env("NRI_PLUGIN_IDX")?);
    let owned = berth::sys::fdpass::take_inherited(fd).map_err(|e| format!("fd {fd}: {e}"))?;
    let socket = std::os::unix::net::UnixStream::from(owned);
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let stream = tokio::net::UnixStream::from_std(socket).map_err(|e| e.to_string())?;
    let plugin = Arc::new(Plugin {
        name: name.clone(),
        out: Mutex::new(None),
        noop: Default::default(),
    });
    let client = PluginClient::with_stream(stream, &name, &index, plugin).await?;
    while !client.is_closed() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
