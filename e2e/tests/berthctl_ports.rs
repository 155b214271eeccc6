//! Published ports the Docker way against a real berthd: `-p CONTAINER` and `-p IP::PORT`
//! get free host ports, `-P` publishes what the image exposes, `port` shows them, and the
//! picked ports really forward to the container.

use std::io::Read as _;
use std::time::{Duration, Instant};

use berth_e2e::ctl::{berthctl, CtlOut};
use berth_e2e::image::{busybox_layer, push_image, Compression, ImageSpec};
use berth_e2e::workload::{env, Env};

fn ctl(e: &Env, args: &[&str]) -> CtlOut {
    berthctl(&e.berthd.endpoint(), args, None).expect("berthctl")
}

fn ok(e: &Env, args: &[&str]) -> String {
    berth_e2e::ctl::ok(&e.berthd.endpoint(), args)
}

/// `8080/tcp -> 0.0.0.0:41234` lines as (container port, host address, host port).
fn ports(e: &Env, name: &str) -> Vec<(String, String, u16)> {
    ok(e, &["port", name])
        .lines()
        .map(|l| {
            let (private, host) = l.split_once(" -> ").expect("arrow");
            let (ip, port) = host.rsplit_once(':').expect("host:port");
            (private.to_string(), ip.to_string(), port.parse().expect("port"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn random_host_ports_with_p_and_publish_all() {
    let e = env(None).await;
    let spec = ImageSpec {
        layers: vec![busybox_layer(Compression::Gzip)],
        exposed_ports: vec!["8080/tcp".into(), "9090/udp".into()],
        ..ImageSpec::default()
    };
    push_image(&e.registry(), "e2e/exposing", "1", &spec, None)
        .await
        .expect("push");
    let image = format!("{}/e2e/exposing:1", e.registry());
    let serve = "while true; do echo pong | nc -l -p 8080; done";

    ok(&e, &["run", "-d", "--name", "all", "-P", &image, "sh", "-c", serve]);
    let all = ports(&e, "all");
    assert_eq!(
        all.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["8080/tcp", "9090/udp"],
        "{all:?}"
    );
    assert!(all.iter().all(|p| p.2 > 0 && p.1 == "0.0.0.0"), "{all:?}");
    assert_eq!(
        ok(&e, &["port", "all", "8080"]).trim(),
        format!("8080/tcp -> 0.0.0.0:{}", all[0].2)
    );
    assert!(!ctl(&e, &["port", "all", "1234"]).ok);

    // The picked port forwards: through the host's address on the pod bridge.
    let pod: serde_json::Value = serde_json::from_str(&ok(&e, &["inspectp", "all"])).expect("json");
    let ip = pod["status"]["network"]["ip"].as_str().expect("pod ip").to_string();
    let gw = format!("{}.1", ip.rsplit_once('.').expect("ip").0);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let got = std::net::TcpStream::connect((gw.as_str(), all[0].2))
            .ok()
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
                let mut buf = String::new();
                let _ = s.read_to_string(&mut buf);
                Some(buf)
            });
        if got.as_deref() == Some("pong\n") {
            break;
        }
        assert!(Instant::now() < deadline, "no answer on the picked port: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }

    // -p CONTAINER and -p IP::CONTAINER: a free port each, next to a fixed one; ps shows them.
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "some",
            "-p",
            "7000",
            "-p",
            "127.0.0.1::7001",
            &e.image,
            "sleep",
            "300",
        ],
    );
    let some = ports(&e, "some");
    assert_eq!(some.len(), 2, "{some:?}");
    assert_eq!((some[1].0.as_str(), some[1].1.as_str()), ("7001/tcp", "127.0.0.1"));
    assert_ne!(some[0].2, some[1].2);
    let ps = ok(&e, &["ps", "--name", "some"]);
    assert!(ps.contains(&format!("127.0.0.1:{}->7001/tcp", some[1].2)), "{ps}");

    let out = ctl(&e, &["run", "--network", "host", "-P", &e.image, "true"]);
    assert!(!out.ok && out.stderr.contains("--network host"), "{}", out.stderr);
    ok(&e, &["rm", "-f", "all", "some"]);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_of_a_network_name_find_each_other_by_name_and_alias() {
    let e = env(None).await;
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "db1",
            "--network",
            "app",
            "--network-alias",
            "database",
            &e.image,
            "sh",
            "-c",
            "while true; do echo hi-from-db | nc -l -p 7000; done",
        ],
    );
    ok(
        &e,
        &[
            "run",
            "-d",
            "--name",
            "web1",
            "--network",
            "app",
            &e.image,
            "sleep",
            "300",
        ],
    );
    ok(&e, &["run", "-d", "--name", "loner", &e.image, "sleep", "300"]);
    let ip_of = |name: &str| -> String {
        let pod: serde_json::Value = serde_json::from_str(&ok(&e, &["inspectp", name])).expect("json");
        pod["status"]["network"]["ip"].as_str().expect("ip").to_string()
    };
    let db_ip = ip_of("db1");
    // Both ways, by name and alias; written into the pod that started first as well.
    let hosts = ok(&e, &["exec", "web1", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{db_ip}\tdatabase db1")), "{hosts}");
    let hosts = ok(&e, &["exec", "db1", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&format!("{}\tweb1", ip_of("web1"))), "{hosts}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = ctl(&e, &["exec", "web1", "nc", "database", "7000"]);
        if got.stdout == "hi-from-db\n" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no answer from database: {} {}",
            got.stdout,
            got.stderr
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Not in the network: not known.
    assert!(!ok(&e, &["exec", "loner", "cat", "/etc/hosts"]).contains("db1"));
    // A member that goes is dropped from the others.
    ok(&e, &["rm", "-f", "db1"]);
    assert!(!ok(&e, &["exec", "web1", "cat", "/etc/hosts"]).contains("database"));

    let out = ctl(&e, &["run", "--network-alias", "x", &e.image, "true"]);
    assert!(!out.ok && out.stderr.contains("--network NAME"), "{}", out.stderr);
    let out = ctl(&e, &["run", "--network", "bad name", &e.image, "true"]);
    assert!(!out.ok, "{}", out.stderr);
    ok(&e, &["rm", "-f", "web1", "loner"]);
    assert_eq!(ok(&e, &["pods", "-q"]), "");
}
