//! `cri-bench`: measures any CRI runtime through the same client, so Berth and containerd
//! are timed alike. `e2e/bench/run.sh` drives it; each mode prints one JSON object.
//!
//! ```text
//! cri-bench suite ENDPOINT --image I --daemon-pid P --marker M [--handler H]
//!           [--sequential 30] [--concurrent 20,100] [--memory-pods 20]
//!           [--stats-containers 50] [--rounds 50] [--crictl PATH]
//!                        the whole suite (see suite::run), then 4 x `rounds` new
//!                        connections with one Version each, and `rounds` runs of
//!                        `crictl version` when --crictl names one
//! cri-bench startup ENDPOINT --image I [--handler H] [--sequential 30]
//!           [--memory-pods N --daemon-pid P --marker M]
//!                        pod start only, then stop+remove (the runtime handler rows);
//!                        with N > 0 also the memory of N pods on the handler
//! cri-bench cleanup ENDPOINT
//!                        stop and remove every pod
//! cri-bench soak ENDPOINT --image I --daemon-pid P [--pods 100] [--containers 2]
//!           [--minutes 3] [--handler H]
//!                        pods created at once, then ExecSync probes every second per
//!                        container and stats every 10 s (see soak::load)
//! cri-bench cycles ENDPOINT --image I --daemon-pid P [--cycles 1000] [--every 100]
//!                        create/start/stop/remove cycles, the daemon's RSS and fds
//!                        sampled (see soak::cycles)
//! cri-bench report DIR   reads DIR/*.json written by run.sh, prints the side-by-side
//!                        table and writes DIR/summary.json
//! ```

mod connect;
mod procs;
mod report;
mod soak;
mod suite;

use std::collections::HashMap;
use std::path::Path;

use berth_e2e::cri::Cri;

/// `--key value` options after the positional arguments.
fn options(args: &[String]) -> anyhow::Result<HashMap<String, String>> {
    let mut out = HashMap::new();
    let mut it = args.iter();
    while let Some(k) = it.next() {
        let key = k
            .strip_prefix("--")
            .ok_or_else(|| anyhow::anyhow!("unexpected argument {k:?}"))?;
        let v = it.next().ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
        out.insert(key.to_string(), v.clone());
    }
    Ok(out)
}

fn num(o: &HashMap<String, String>, key: &str, default: usize) -> anyhow::Result<usize> {
    o.get(key).map_or(Ok(default), |v| {
        v.parse().map_err(|_| anyhow::anyhow!("--{key}: {v:?} is not a number"))
    })
}

fn required<'a>(o: &'a HashMap<String, String>, key: &str) -> anyhow::Result<&'a str> {
    o.get(key)
        .map(String::as_str)
        .ok_or_else(|| anyhow::anyhow!("--{key} is required"))
}

/// The socket path of a `unix://` endpoint (or of a bare path).
fn socket(endpoint: &str) -> &Path {
    Path::new(endpoint.strip_prefix("unix://").unwrap_or(endpoint))
}

async fn connect(endpoint: &str) -> anyhow::Result<Cri> {
    Cri::connect(socket(endpoint)).await
}

fn target(o: &HashMap<String, String>) -> anyhow::Result<suite::Target> {
    Ok(suite::Target {
        image: required(o, "image")?.to_string(),
        handler: o.get("handler").cloned().unwrap_or_default(),
        daemon: o.get("daemon-pid").map_or(Ok(0), |p| p.parse())?,
        marker: o.get("marker").cloned().unwrap_or_default(),
    })
}

async fn startup(c: &mut Cri, t: &suite::Target, n: usize, memory_pods: usize) -> anyhow::Result<serde_json::Value> {
    c.pull(&t.image, None).await?;
    suite::start_pod(c, t).await?;
    suite::cleanup(c).await?;
    let mut r = suite::sequential(c, t, n).await?;
    r["stop_remove"] = suite::cleanup(c).await?;
    if memory_pods > 0 {
        suite::concurrent(c, t, memory_pods).await?;
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        r["memory_pods"] = memory_pods.into();
        r["with_pods"] = suite::memory(t);
        suite::cleanup(c).await?;
    }
    Ok(r)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(arg)) = (args.first(), args.get(1)) else {
        anyhow::bail!("usage: cri-bench suite|startup|cleanup|soak|cycles ENDPOINT [--OPTION VALUE]… | report DIR");
    };
    let o = options(&args[2..])?;
    let out = match mode.as_str() {
        "suite" => {
            let sizes = suite::Sizes {
                sequential: num(&o, "sequential", 30)?,
                concurrent: o
                    .get("concurrent")
                    .map_or("20,100", String::as_str)
                    .split(',')
                    .map(|n| n.trim().parse())
                    .collect::<Result<_, _>>()?,
                memory_pods: num(&o, "memory-pods", 20)?,
                stats_containers: num(&o, "stats-containers", 50)?,
                rounds: num(&o, "rounds", 50)?,
            };
            let mut r = suite::run(&mut connect(arg).await?, &target(&o)?, &sizes).await?;
            // Under a millisecond each: four times the rounds, so the median holds still.
            r["new_connection"] = connect::new_connections(socket(arg), sizes.rounds * 4).await?;
            if let Some(crictl) = o.get("crictl") {
                r["crictl_version"] = connect::crictl_version(Path::new(crictl), arg, sizes.rounds).await?;
            }
            r
        }
        "startup" => {
            let mut c = connect(arg).await?;
            let t = target(&o)?;
            // A handler this machine cannot run (crun refuses cgroup v1 hybrid hosts whose v2
            // tree holds controllers) is reported, not fatal; its pods are removed.
            match startup(&mut c, &t, num(&o, "sequential", 30)?, num(&o, "memory-pods", 0)?).await {
                Ok(r) => r,
                Err(e) => {
                    suite::cleanup(&mut c).await?;
                    serde_json::json!({ "error": format!("{e:#}") })
                }
            }
        }
        "cleanup" => suite::cleanup(&mut connect(arg).await?).await?,
        "soak" => {
            let minutes = o.get("minutes").map_or(Ok(3.0), |m| m.parse::<f64>())?;
            soak::load(
                &mut connect(arg).await?,
                &target(&o)?,
                num(&o, "pods", 100)?,
                num(&o, "containers", 2)?,
                std::time::Duration::from_secs_f64(minutes * 60.0),
            )
            .await?
        }
        "cycles" => {
            soak::cycles(
                &mut connect(arg).await?,
                &target(&o)?,
                num(&o, "cycles", 1000)?,
                num(&o, "every", 100)?,
            )
            .await?
        }
        "report" => report::report(Path::new(arg))?,
        other => anyhow::bail!("unknown mode {other:?}"),
    };
    if mode != "report" {
        println!("{out}");
    }
    Ok(())
}
