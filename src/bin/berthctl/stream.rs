//! `exec`, `attach` and `port-forward` over berthd's streaming server: the CRI call returns a
//! URL, and berthctl speaks the Kubernetes channel protocols over a WebSocket to it
//! (channel byte first: 0 stdin, 1 stdout, 2 stderr, 3 status, 4 resize; v5 adds 255 close).

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use berth_proto as pb;
use berth_proto::runtime_service_client::RuntimeServiceClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tonic::transport::Channel;

use crate::ws::{self, Message};
use crate::{containers, explain, resolve, term, Ctx};

#[derive(Debug, clap::Args)]
pub struct ExecArgs {
    /// Keep stdin open and send it to the command.
    #[arg(short, long)]
    interactive: bool,
    /// Give the command a terminal (puts this terminal in raw mode).
    #[arg(short, long)]
    tty: bool,
    /// Run with ExecSync: output arrives when the command ends (no stdin, no tty).
    #[arg(short, long, conflicts_with_all = ["interactive", "tty"])]
    sync: bool,
    /// Run in the background: start the command and return (no output).
    #[arg(short, long, conflicts_with_all = ["interactive", "tty", "sync"])]
    detach: bool,
    /// Set an environment variable, KEY=VALUE (KEY alone takes this shell's); repeatable.
    #[arg(short, long, value_name = "KEY=VALUE")]
    env: Vec<String>,
    /// Run as this user: name, uid, name:group or uid:gid (the container's own names).
    #[arg(short, long, value_name = "USER")]
    user: Option<String>,
    /// Run in this directory of the container.
    #[arg(short, long, value_name = "DIR")]
    workdir: Option<String>,
    /// The container (id, id prefix or name), then the command and its arguments. As with
    /// docker exec, berthctl's own flags end at the container.
    #[arg(
        value_name = "CONTAINER COMMAND [ARG...]",
        required = true,
        num_args = 2..,
        trailing_var_arg = true
    )]
    target: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct AttachArgs {
    /// Send stdin to the container (it must have been created with stdin).
    #[arg(short, long)]
    interactive: bool,
    /// Keys that detach, leaving the container running ("" turns them off).
    #[arg(long, value_name = "KEYS", default_value = crate::detach::DEFAULT)]
    detach_keys: String,
    /// The container (id, id prefix or name).
    container: String,
}

#[derive(Debug, clap::Args)]
pub struct PortForwardArgs {
    /// The pod (id, id prefix or name).
    pod: String,
    /// Ports as [LOCAL:]REMOTE (LOCAL 0 picks a free port).
    #[arg(required = true)]
    ports: Vec<String>,
    /// Local address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
}

/// What a session's status channel said: the exit code, or an error message.
pub fn exit_from_status(version: u8, payload: &[u8]) -> Result<i32, String> {
    if version < 4 {
        let text = String::from_utf8_lossy(payload).trim().to_string();
        return if text.is_empty() { Ok(0) } else { Err(text) };
    }
    let v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| String::from_utf8_lossy(payload).into_owned())?;
    if v.get("status").and_then(|s| s.as_str()) == Some("Success") {
        return Ok(0);
    }
    let causes = v
        .pointer("/details/causes")
        .and_then(|c| c.as_array())
        .cloned()
        .unwrap_or_default();
    for c in causes {
        if c.get("reason").and_then(|r| r.as_str()) == Some("ExitCode") {
            if let Some(code) = c.get("message").and_then(|m| m.as_str()).and_then(|m| m.parse().ok()) {
                return Ok(code);
            }
        }
    }
    Err(v
        .get("message")
        .and_then(|m| m.as_str())
        .unwrap_or("the session failed")
        .to_string())
}

/// This process's stdin in chunks, read on a thread of its own (a read of a terminal
/// cannot be cancelled; the thread ends with the process). The channel closes at EOF.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    std::thread::spawn(move || {
        use std::io::Read as _;
        let mut input = std::io::stdin().lock();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// Runs an exec or attach session on `url` until the server ends it. Returns the exit code
/// the status channel carried (`None` when it sent none).
/// Runs a streaming session; with `detach_keys`, typing them ends it with
/// [`crate::detach::Detached`] (the container runs on).
pub async fn session(url: &str, stdin: bool, tty: bool, detach_keys: Option<Vec<u8>>) -> anyhow::Result<Option<i32>> {
    let (mut reader, writer, protocol) = ws::connect(url, &["v5.channel.k8s.io", "v4.channel.k8s.io"]).await?;
    let version = match protocol.as_str() {
        "v5.channel.k8s.io" => 5,
        "v4.channel.k8s.io" => 4,
        "" | "channel.k8s.io" => 1,
        other => bail!("streaming server chose an unexpected protocol {other:?}"),
    };
    let raw = if tty { term::RawMode::enter()? } else { None };
    let mut tasks = Vec::new();
    if tty {
        if let Some((c, r)) = term::size() {
            let mut msg = vec![4u8];
            msg.extend(term::resize_json(c, r));
            writer.binary(msg).await?;
        }
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut winch) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()) else {
                return;
            };
            while winch.recv().await.is_some() {
                if let Some((c, r)) = term::size() {
                    let mut msg = vec![4u8];
                    msg.extend(term::resize_json(c, r));
                    if w.binary(msg).await.is_err() {
                        return;
                    }
                }
            }
        }));
    }
    let (detached_tx, detached_rx) = tokio::sync::oneshot::channel::<()>();
    if stdin {
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut input = stdin_chunks();
            let mut scanner = crate::detach::Scanner::new(detach_keys.unwrap_or_default());
            while let Some(chunk) = input.recv().await {
                let (pass, detached) = scanner.feed(&chunk);
                let mut msg = Vec::with_capacity(pass.len() + 1);
                msg.push(0u8);
                msg.extend_from_slice(&pass);
                if pass.is_empty() && !detached {
                    continue;
                }
                if !pass.is_empty() && w.binary(msg).await.is_err() {
                    return;
                }
                if detached {
                    let _ = detached_tx.send(());
                    return;
                }
            }
            if version >= 5 {
                let _ = w.binary(vec![255u8, 0]).await;
            }
        }));
    }
    // Resolves only when the user detached (a finished input task just leaves it pending).
    let mut detached = Box::pin(async move {
        if detached_rx.await.is_err() {
            std::future::pending::<()>().await;
        }
    });
    let mut code = None;
    let result: anyhow::Result<()> = async {
        loop {
            let next = tokio::select! {
                m = reader.next() => m?,
                () = &mut detached => return Err(crate::detach::Detached.into()),
            };
            let data = match next {
                Message::Close => return Ok(()),
                Message::Text => continue,
                Message::Binary(d) if d.is_empty() => continue,
                Message::Binary(d) => d,
            };
            let payload = &data[1..];
            match data[0] {
                1 => {
                    let mut out = std::io::stdout().lock();
                    out.write_all(payload)?;
                    out.flush()?;
                }
                2 => {
                    let mut err = std::io::stderr().lock();
                    err.write_all(payload)?;
                    err.flush()?;
                }
                3 if !payload.is_empty() => match exit_from_status(version, payload) {
                    Ok(c) => code = Some(c),
                    Err(message) => {
                        bail!("{message}");
                    }
                },
                _ => {}
            }
        }
    }
    .await;
    for t in tasks {
        t.abort();
    }
    let _ = writer.close().await;
    drop(raw);
    result.map(|()| code)
}

pub async fn exec(ctx: &mut Ctx, a: ExecArgs) -> anyhow::Result<i32> {
    let (container, cmd) = a.target.split_first().context("exec: give a container and a command")?;
    let cmd = cmd.to_vec();
    let id = resolve::container(ctx, container).await?.id;
    if a.sync {
        let r = ctx
            .rt
            .exec_sync(ctx.req(pb::ExecSyncRequest {
                container_id: id,
                cmd: cmd.clone(),
                timeout: ctx.timeout.unwrap_or(0) as i64,
            }))
            .await
            .map_err(explain)?
            .into_inner();
        std::io::stdout().write_all(&r.stdout)?;
        std::io::stderr().write_all(&r.stderr)?;
        return Ok(r.exit_code);
    }
    let plain = !a.detach && a.env.is_empty() && a.user.is_none() && a.workdir.is_none();
    if a.sync && !plain {
        anyhow::bail!("--sync runs through the CRI's ExecSync, which takes no -d, -e, -u or -w");
    }
    let url = if plain {
        ctx.rt
            .exec(ctx.req(pb::ExecRequest {
                container_id: id,
                cmd,
                tty: a.tty,
                stdin: a.interactive,
                stdout: true,
                stderr: !a.tty,
            }))
            .await
            .map_err(explain)?
            .into_inner()
            .url
    } else {
        let env = a
            .env
            .iter()
            .map(|e| match e.split_once('=') {
                Some(_) => e.clone(),
                None => format!("{e}={}", std::env::var(e).unwrap_or_default()),
            })
            .collect();
        let req = berth_proto::berth::v1::ExecRequest {
            container_id: id,
            cmd,
            tty: a.tty,
            stdin: a.interactive,
            stdout: true,
            stderr: !a.tty,
            env,
            workdir: a.workdir.clone().unwrap_or_default(),
            user: a.user.clone().unwrap_or_default(),
            detach: a.detach,
        };
        ctx.ctr.exec(ctx.req(req)).await.map_err(explain)?.into_inner().url
    };
    if a.detach {
        return Ok(0);
    }
    Ok(session(&url, a.interactive, a.tty, None).await?.unwrap_or(0))
}

/// Attaches to a container's stdio; `tty` must match how it was created.
pub async fn attach_to(
    rt: &mut RuntimeServiceClient<Channel>,
    id: &str,
    stdin: bool,
    tty: bool,
    detach_keys: Option<Vec<u8>>,
) -> anyhow::Result<Option<i32>> {
    let url = rt
        .attach(pb::AttachRequest {
            container_id: id.into(),
            stdin,
            tty,
            stdout: true,
            stderr: !tty,
        })
        .await
        .map_err(explain)?
        .into_inner()
        .url;
    session(&url, stdin, tty, detach_keys).await
}

pub async fn attach(ctx: &mut Ctx, a: AttachArgs) -> anyhow::Result<i32> {
    let id = resolve::container(ctx, &a.container).await?.id;
    let r = containers::status(ctx, &id, true).await?;
    let info = crate::json::info(&r.info);
    let tty = info.pointer("/spec/tty").and_then(|t| t.as_bool()).unwrap_or(false);
    let keys = crate::detach::parse(&a.detach_keys)?;
    // The status channel of an attach tells nothing of the exit: ask for the container's.
    match attach_to(&mut ctx.rt, &id, a.interactive, tty, Some(keys)).await {
        Err(e) if e.is::<crate::detach::Detached>() => {
            eprintln!("read escape sequence");
            return Ok(0);
        }
        other => other?,
    };
    let st = containers::status(ctx, &id, false).await?.status.unwrap_or_default();
    Ok(if st.state == pb::ContainerState::ContainerExited as i32 {
        st.exit_code
    } else {
        0
    })
}

/// `[LOCAL:]REMOTE` → (local, remote).
pub fn parse_forward(spec: &str) -> anyhow::Result<(u16, u16)> {
    let (l, r) = spec.split_once(':').unwrap_or((spec, spec));
    let local: u16 = l
        .parse()
        .with_context(|| format!("port {spec:?}: {l:?} is not a port number"))?;
    let remote: u16 = r
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .with_context(|| format!("port {spec:?}: {r:?} is not a port number from 1 to 65535"))?;
    Ok((local, remote))
}

pub async fn port_forward(ctx: &mut Ctx, a: PortForwardArgs) -> anyhow::Result<i32> {
    let pod = resolve::pod(ctx, &a.pod).await?.id;
    let mut listeners = Vec::new();
    for spec in &a.ports {
        let (local, remote) = parse_forward(spec)?;
        let l = tokio::net::TcpListener::bind((a.address.as_str(), local))
            .await
            .with_context(|| format!("listening on {}:{local}", a.address))?;
        println!("Forwarding from {} -> {remote}", l.local_addr()?);
        listeners.push((l, remote));
    }
    std::io::stdout().flush()?;
    let mut tasks = Vec::new();
    for (l, remote) in listeners {
        let rt = ctx.rt.clone();
        let pod = pod.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let Ok((conn, peer)) = l.accept().await else { return };
                let (rt, pod) = (rt.clone(), pod.clone());
                tokio::spawn(async move {
                    if let Err(e) = forward_one(rt, &pod, remote, conn).await {
                        eprintln!("berthctl: forwarding {peer} to port {remote}: {e:#}");
                    }
                });
            }
        }));
    }
    tokio::signal::ctrl_c().await?;
    Ok(0)
}

/// Carries one local connection to `port` in the pod over its own WebSocket.
async fn forward_one(
    mut rt: RuntimeServiceClient<Channel>,
    pod: &str,
    port: u16,
    conn: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let url = rt
        .port_forward(pb::PortForwardRequest {
            pod_sandbox_id: pod.into(),
            port: vec![port as i32],
        })
        .await
        .map_err(explain)?
        .into_inner()
        .url;
    let sep = if url.contains('?') { '&' } else { '?' };
    let (mut reader, writer, _) = ws::connect(&format!("{url}{sep}ports={port}"), &["v4.channel.k8s.io"]).await?;
    let (mut tcp_r, mut tcp_w) = conn.into_split();
    let w = writer.clone();
    let mut up = tokio::spawn(async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match tcp_r.read(&mut buf[1..]).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    buf[0] = 0;
                    if w.binary(buf[..=n].to_vec()).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut seen_prefix = [false, false];
    let mut local_done = false;
    loop {
        // After the local side stopped sending, the pod's answer is waited for until the
        // server has been quiet a while (WebSocket port-forward has no end-of-data signal).
        let next = if local_done {
            match tokio::time::timeout(Duration::from_secs(2), reader.next()).await {
                Ok(m) => m?,
                Err(_) => break,
            }
        } else {
            tokio::select! {
                m = reader.next() => m?,
                _ = &mut up => { local_done = true; continue; }
            }
        };
        let data = match next {
            Message::Close => break,
            Message::Binary(d) if !d.is_empty() => d,
            _ => continue,
        };
        let ch = data[0] as usize;
        if ch < 2 && !seen_prefix[ch] {
            seen_prefix[ch] = true;
            continue;
        }
        match ch {
            0 if tcp_w.write_all(&data[1..]).await.is_err() => break,
            1 => bail!("{}", String::from_utf8_lossy(&data[1..]).trim()),
            _ => {}
        }
    }
    up.abort();
    let _ = tcp_w.shutdown().await;
    let _ = writer.close().await;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(exit_from_status(4, br#"{"status":"Success"}"#), Ok(0));
        let fail = br#"{"status":"Failure","reason":"NonZeroExitCode","details":{"causes":[{"reason":"ExitCode","message":"3"}]}}"#;
        assert_eq!(exit_from_status(5, fail), Ok(3));
        assert_eq!(
            exit_from_status(4, br#"{"status":"Failure","message":"no such file"}"#),
            Err("no such file".into())
        );
        assert_eq!(exit_from_status(1, b""), Ok(0));
        assert_eq!(exit_from_status(1, b"boom"), Err("boom".into()));
        assert_eq!(parse_forward("8080:80").unwrap(), (8080, 80));
        assert_eq!(parse_forward("80").unwrap(), (80, 80));
        assert_eq!(parse_forward("0:80").unwrap(), (0, 80));
        assert!(parse_forward("x:80").is_err());
        assert!(parse_forward("80:0").is_err());
    }

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(flatten)]
        exec: ExecArgs,
    }

    #[test]
    fn exec_flags_end_at_the_container() {
        use clap::Parser as _;
        let t = T::try_parse_from(["exec", "-s", "web", "ls", "-it", "--sync"]).unwrap();
        assert!(t.exec.sync && !t.exec.interactive && !t.exec.tty);
        assert_eq!(t.exec.target, ["web", "ls", "-it", "--sync"]);
        let t = T::try_parse_from(["exec", "-it", "web", "sh"]).unwrap();
        assert!(t.exec.interactive && t.exec.tty);
        assert!(T::try_parse_from(["exec", "web"]).is_err(), "a command is required");
    }
}
