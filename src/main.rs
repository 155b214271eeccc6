//! `berthd`: the Berth CRI daemon.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use berth::config::{Config, LogFormat, DEFAULT_CONFIG};
use clap::Parser;

/// Berth: a Kubernetes CRI container runtime daemon.
#[derive(Debug, Parser)]
#[command(name = "berthd", version, about)]
struct Args {
    /// TOML config file; drop-ins are read from FILE.d/*.toml.
    #[arg(long, env = "BERTH_CONFIG")]
    config: Option<PathBuf>,
    /// CRI endpoint to serve, unix:///PATH [default: unix:///run/berth/berth.sock].
    #[arg(long, env = "BERTH_LISTEN")]
    listen: Option<String>,
    /// Persistent data directory [default: /var/lib/berth].
    #[arg(long, env = "BERTH_ROOT")]
    root: Option<PathBuf>,
    /// Runtime state directory [default: /run/berth].
    #[arg(long, env = "BERTH_STATE")]
    state: Option<PathBuf>,
    /// Directory of per-registry hosts.toml files [default: /etc/berth/certs.d].
    #[arg(long, env = "BERTH_REGISTRY_CONFIG_PATH")]
    registry_config_path: Option<PathBuf>,
    /// Directory of CNI network configs [default: /etc/cni/net.d].
    #[arg(long, env = "BERTH_CNI_CONF_DIR")]
    cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directories, ':'-separated [default: /opt/cni/bin:/usr/lib/cni].
    #[arg(long, env = "BERTH_CNI_BIN_DIR")]
    cni_bin_dir: Option<String>,
    /// Log filter: a level or RUST_LOG-style directives [default: info].
    #[arg(long, env = "BERTH_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "BERTH_LOG_FORMAT")]
    log_format: Option<String>,
    /// The socket NRI plugins connect to; an empty value turns NRI off
    /// [default: /var/run/nri/nri.sock].
    #[arg(long, env = "BERTH_NRI_SOCKET")]
    nri_socket: Option<PathBuf>,
    #[command(subcommand)]
    cmd: Option<Cmd>,
}

/// Commands besides serving CRI (the default).
#[derive(Debug, clap::Subcommand)]
enum Cmd {
    /// Container Device Interface: list the devices, or generate the NVIDIA spec now.
    Cdi {
        #[command(subcommand)]
        cmd: CdiCmd,
    },
    /// Hooks that Berth's generated CDI specs make the OCI runtime run.
    #[command(name = "cdi-hook", hide = true)]
    CdiHook {
        #[command(subcommand)]
        cmd: HookCmd,
    },
}

#[derive(Debug, clap::Subcommand)]
enum CdiCmd {
    /// The devices the configured spec dirs declare, and any spec errors (JSON).
    List,
    /// Discover NVIDIA GPUs and (re)write the generated spec, as berthd does at start.
    GenerateNvidia {
        /// Write it even if another spec already declares nvidia.com/gpu.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, clap::Subcommand)]
enum HookCmd {
    /// createContainer hook: refresh the container's ld.so.cache to include FOLDERs (the OCI
    /// state arrives on stdin).
    UpdateLdcache {
        #[arg(long = "folder")]
        folders: Vec<PathBuf>,
    },
}

fn run_command(cmd: &Cmd, args: &Args) -> anyhow::Result<()> {
    match cmd {
        Cmd::CdiHook {
            cmd: HookCmd::UpdateLdcache { folders },
        } => {
            let mut state = Vec::new();
            std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut state)?;
            berth::cdi::nvidia::update_ldcache(&state, folders)?;
        }
        Cmd::Cdi { cmd } => {
            let config = load(args)?;
            match cmd {
                CdiCmd::List => {
                    let listing = berth::cdi::Registry::new(config.cdi.spec_dirs.clone()).listing();
                    println!("{}", serde_json::to_string_pretty(&listing)?);
                }
                CdiCmd::GenerateNvidia { force } => match berth::cdi::discover_nvidia(&config.cdi, *force) {
                    Ok(Some(r)) => {
                        for w in &r.warnings {
                            eprintln!("warning: {w}");
                        }
                        println!(
                            "{}: {} GPU(s); devices: {}",
                            r.path.display(),
                            r.gpus,
                            r.devices.join(" ")
                        );
                    }
                    Ok(None) => {
                        println!("no spec written: no NVIDIA GPU, or another spec declares nvidia.com/gpu (--force)")
                    }
                    Err(e) => anyhow::bail!(e),
                },
            }
        }
    }
    Ok(())
}

fn load(args: &Args) -> anyhow::Result<Config> {
    let (path, required) = match &args.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG), false),
    };
    let mut config = Config::load(&path, required)?;
    if let Some(v) = &args.listen {
        config.listen = v.clone();
    }
    if let Some(v) = &args.root {
        config.root = v.clone();
    }
    if let Some(v) = &args.state {
        config.state = v.clone();
    }
    if let Some(v) = &args.registry_config_path {
        config.registry_config_path = v.clone();
    }
    if let Some(v) = &args.cni_conf_dir {
        config.cni_conf_dir = v.clone();
    }
    if let Some(v) = &args.cni_bin_dir {
        config.cni_bin_dirs = std::env::split_paths(v).collect();
    }
    if let Some(v) = &args.log_level {
        config.log_level = v.clone();
    }
    if let Some(v) = &args.nri_socket {
        config.nri.enabled &= !v.as_os_str().is_empty();
        config.nri.socket_path = v.clone();
    }
    if let Some(v) = &args.log_format {
        config.log_format = match v.as_str() {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => anyhow::bail!("--log-format {other:?}: expected text or json"),
        };
    }
    config.validate()?;
    Ok(config)
}

fn init_tracing(config: &Config) -> anyhow::Result<()> {
    // A bare level applies to Berth itself; libraries (h2, hyper) stay at warn. Directive
    // lists (`berth=debug,h2=trace`) are taken as they are.
    let level = config.log_level.trim();
    let directives = if level.contains(['=', ',']) {
        level.to_string()
    } else {
        format!("warn,berth={level},berthd={level}")
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives).with_context(|| format!("log level {level:?}"))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.with_ansi(false).init(),
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(cmd) = &args.cmd {
        return run_command(cmd, &args);
    }
    let config = load(&args)?;
    init_tracing(&config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let socket = config.socket_path()?;
    let listener = berth::server::bind(&socket)?;
    let daemon = Arc::new(berth::daemon::Daemon::open(config).await?);
    if !daemon.config.metrics.address.is_empty() {
        let d = Arc::clone(&daemon);
        let addr =
            berth::metrics::server::start(&daemon.config.metrics.address, Arc::new(move || d.metrics_snapshot()))
                .await
                .with_context(|| format!("metrics endpoint on {}", daemon.config.metrics.address))?;
        tracing::info!(address = %addr, "serving Prometheus metrics at /metrics");
    }
    tracing::info!(socket = %socket.display(), root = %daemon.config.root.display(), version = env!("CARGO_PKG_VERSION"), "berthd serving CRI");
    let nri = daemon.nri.clone();
    berth::server::serve(
        listener,
        &socket,
        berth::cri::Cri::new(daemon),
        berth::server::shutdown_signal(),
    )
    .await?;
    // Plugins are told (Shutdown) and their connections closed; the socket goes.
    nri.shutdown().await;
    tracing::info!("berthd stopped");
    Ok(())
}
