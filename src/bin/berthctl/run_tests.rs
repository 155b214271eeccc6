#![allow(clippy::unwrap_used)]
use super::*;
use clap::Parser as _;

#[derive(Debug, clap::Parser)]
struct T {
    #[command(flatten)]
    run: RunArgs,
}

#[test]
fn plan_maps_flags_to_cri() {
    let dir = tempfile::tempdir().unwrap();
    let vol = format!("{}:/data:ro", dir.path().display());
    let t = T::try_parse_from([
        "run",
        "--name",
        "web",
        "-p",
        "8080:80",
        "-p",
        "127.0.0.1:5353:53/udp",
        "-v",
        &vol,
        "-e",
        "A=1",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "-u",
        "1000:100",
        "--entrypoint",
        "/bin/sh",
        "-l",
        "tier=front",
        "-it",
        "img",
        "-c",
        "echo hi",
    ])
    .unwrap();
    let p = plan(&t.run).unwrap();
    assert_eq!(p.name, "web");
    assert_eq!(p.pod.port_mappings.len(), 2);
    assert_eq!(
        p.pod.annotations[PORTS_ANNOTATION],
        "0.0.0.0:8080->80/tcp, 127.0.0.1:5353->53/udp"
    );
    assert_eq!(p.pod.labels[RUN_LABEL], "1");
    let c = &p.container;
    assert_eq!(c.command, vec!["/bin/sh"]);
    assert_eq!(c.args, vec!["-c", "echo hi"]);
    assert!(c.tty && c.stdin && c.stdin_once);
    assert!(matches!(&p.volumes[0], volumes::VolumeUse::Bind { readonly: true, target, .. } if target == "/data"));
    assert_eq!(c.labels["tier"], "front");
    let l = c.linux.clone().unwrap();
    let r = l.resources.unwrap();
    assert_eq!(
        (r.memory_limit_in_bytes, r.cpu_period, r.cpu_quota),
        (64 << 20, 100_000, 50_000)
    );
    let s = l.security_context.unwrap();
    assert_eq!(
        (s.run_as_user.unwrap().value, s.run_as_group.unwrap().value),
        (1000, 100)
    );

    let t = T::try_parse_from(["run", "--network", "host", "-p", "1:2", "img"]).unwrap();
    assert!(plan(&t.run).unwrap_err().to_string().contains("--network host"));
    let t = T::try_parse_from(["run", "--mount", "type=bind,src=/does/not/exist,dst=/x", "img"]).unwrap();
    assert!(plan(&t.run).unwrap_err().to_string().contains("does not exist"));
    let t = T::try_parse_from(["run", "img"]).unwrap();
    assert!(plan(&t.run).unwrap().name.starts_with("run-"));
}

#[test]
fn flags_after_the_image_belong_to_the_command() {
    let t = T::try_parse_from([
        "run",
        "--rm",
        "--entrypoint",
        "echo",
        "img",
        "--name",
        "Lulaide",
        "-p",
        "1:2",
        "-it",
        "--",
        "x",
    ])
    .unwrap();
    assert!(t.run.rm && t.run.name.is_none() && t.run.publish.is_empty());
    assert!(!t.run.interactive && !t.run.tty);
    assert_eq!(t.run.image(), "img");
    assert_eq!(t.run.cmd(), ["--name", "Lulaide", "-p", "1:2", "-it", "--", "x"]);
    let p = plan(&t.run).unwrap();
    assert!(p.name.starts_with("run-"));
    assert_eq!(p.container.args, ["--name", "Lulaide", "-p", "1:2", "-it", "--", "x"]);

    // Flags before the image are berthctl's, also when the image comes last.
    let t = T::try_parse_from(["run", "-d", "--name", "web", "img"]).unwrap();
    assert!(t.run.detach && t.run.name.as_deref() == Some("web") && t.run.cmd().is_empty());
    assert!(T::try_parse_from(["run", "-d"]).is_err(), "an image is required");
    assert!(
        T::try_parse_from(["run", "--bogus", "img"]).is_err(),
        "unknown flags before IMAGE are errors"
    );
}
