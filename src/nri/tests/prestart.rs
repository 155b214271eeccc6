//! A plugin started from the plugin directory, with its socket inherited.

use super::*;

/// The plugin half of `a_plugin_from_the_plugin_dir_is_started`: this test binary, run
/// again by a launcher script with the inherited socket (otherwise it does nothing).
#[test]
fn prestarted_plugin_child() {
    let Ok(fd) = std::env::var("NRI_PLUGIN_SOCKET") else {
        return;
    };
    struct Echo {
        config: Mutex<String>,
    }
    impl TestPlugin for Echo {
        fn events(&self) -> u32 {
            mask(&[Event::CreateContainer])
        }
        fn configure(&self, req: ConfigureRequest) -> Reply<()> {
            *self.config.lock().expect("lock") = req.config;
            Box::pin(async { Ok(()) })
        }
        fn create_container(&self, _req: CreateContainerRequest) -> Reply<CreateContainerResponse> {
            let config = self.config.lock().expect("lock").clone();
            let env = ["NRI_PLUGIN_NAME", "NRI_PLUGIN_IDX"]
                .map(|k| std::env::var(k).unwrap_or_default())
                .join("/");
            let annotations = HashMap::from([("config".to_string(), config), ("env".to_string(), env)]);
            Box::pin(async move {
                Ok(CreateContainerResponse {
                    adjust: Some(ContainerAdjustment {
                        annotations,
                        ..Default::default()
                    }),
                    ..Default::default()
                })
            })
        }
    }
    let fd = crate::sys::fdpass::take_inherited(fd.parse().expect("fd number")).expect("inherited socket");
    let stream = std::os::unix::net::UnixStream::from(fd);
    stream.set_nonblocking(true).expect("nonblocking");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let stream = tokio::net::UnixStream::from_std(stream).expect("stream");
        let plugin = Arc::new(Echo {
            config: Mutex::default(),
        });
        let name = std::env::var("NRI_PLUGIN_NAME").unwrap_or_default();
        let idx = std::env::var("NRI_PLUGIN_IDX").unwrap_or_default();
        let client = PluginClient::with_stream(stream, &name, &idx, plugin)
            .await
            .expect("register");
        let start = Instant::now();
        while !client.is_closed() && start.elapsed() < Duration::from_secs(30) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
}

#[tokio::test]
async fn a_plugin_from_the_plugin_dir_is_started() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path());
    std::fs::create_dir_all(&cfg.plugin_path).expect("mkdir");
    std::fs::create_dir_all(&cfg.plugin_config_path).expect("mkdir");
    let exe = std::env::current_exe().expect("test binary");
    let script = format!(
        "#!/bin/sh\nexec '{}' --exact nri::tests::prestart::prestarted_plugin_child --test-threads=1 --nocapture\n",
        exe.display()
    );
    let launcher = cfg.plugin_path.join("07-echo");
    std::fs::write(&launcher, script).expect("write");
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::write(cfg.plugin_config_path.join("echo.conf"), "level: 3").expect("conf");
    let nri = Nri::start(&cfg, Arc::new(Host::default())).expect("start");
    nri.wait_started().await;
    assert_eq!(nri.plugins().len(), 1, "registered and synchronized once started");
    let info = &nri.plugins()[0];
    assert_eq!((info.name.as_str(), info.index.as_str()), ("echo", "07"));
    assert!(info.pid.is_some());
    let result = nri.create_container(&pod(), &ctr()).await.expect("create");
    assert_eq!(result.adjust.annotations["config"], "level: 3");
    assert_eq!(result.adjust.annotations["env"], "echo/07");
    nri.shutdown().await;
}
