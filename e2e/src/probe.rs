//! What e2e tests look at from outside Berth: processes by command line, HTTP answers.

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

/// Processes whose command line mentions `needle`.
pub fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains(needle) {
            out.push((pid, cmd));
        }
    }
    out
}

/// One HTTP GET of `path` from `ip:port`; the body.
pub fn http_get(ip: &str, port: u16, path: &str) -> std::io::Result<String> {
    let mut s =
        std::net::TcpStream::connect_timeout(&format!("{ip}:{port}").parse().expect("addr"), Duration::from_secs(3))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {ip}\r\n\r\n")?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
}

pub async fn wait_http(ip: &str, port: u16, path: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(ip, port, path) {
            Ok(body) if !body.is_empty() => return body,
            other => assert!(Instant::now() < deadline, "no answer from {ip}:{port}{path}: {other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
