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
    berth::server::serve(
        listener,
        &socket,
        berth::cri::Cri::new(daemon),
        berth::server::shutdown_signal(),
    )
    .await?;
    tracing::info!("berthd stopped");
    Ok(())
}
