//! Tests of NVIDIA discovery over fake device and driver trees.

use super::hook::find_ldconfig;
use super::smi::*;
use super::*;
use serde_json::json;
use std::ffi::OsString;
use std::os::unix::fs::symlink;
use std::os::unix::net::UnixListener;
use std::process::Command;

const VERSION: &str = "535.104.05";
const UUID0: &str = "GPU-11111111-2222-3333-4444-555555555555";
const UUID1: &str = "GPU-66666666-7777-8888-9999-000000000000";
const MIG_UUID: &str = "MIG-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

fn mknod(path: &Path, major: u32, minor: u32) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    let status = Command::new("mknod")
        .arg(path)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "mknod {} failed (tests need root)", path.display());
}

fn write(path: &Path, content: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn write_exec(path: &Path, content: &str) {
    write(path, content);
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

struct Fake {
    _tmp: tempfile::TempDir,
    dev: PathBuf,
    drv: PathBuf,
    _socket: UnixListener,
}

/// Builds the fake device root and driver root.
fn fake_tree() -> Fake {
    let tmp = tempfile::tempdir().unwrap();
    let dev = tmp.path().join("devroot");
    let drv = tmp.path().join("drvroot");
    mknod(&dev.join("dev/nvidia0"), 195, 0);
    mknod(&dev.join("dev/nvidia1"), 195, 1);
    mknod(&dev.join("dev/nvidiactl"), 195, 255);
    mknod(&dev.join("dev/nvidia-uvm"), 510, 0);
    mknod(&dev.join("dev/nvidia-caps/nvidia-cap12"), 234, 12);
    mknod(&dev.join("dev/nvidia-caps/nvidia-cap13"), 234, 13);
    write(&dev.join("dev/nvidia-modeset"), "not a device node");

    let lib = drv.join("usr/lib/x86_64-linux-gnu");
    write(&lib.join(format!("libcuda.so.{VERSION}")), "fake libcuda");
    symlink(format!("libcuda.so.{VERSION}"), lib.join("libcuda.so.1")).unwrap();
    symlink("libcuda.so.1", lib.join("libcuda.so")).unwrap();
    write(&lib.join(format!("libnvidia-ml.so.{VERSION}")), "fake nvml");
    // Absolute link: must resolve inside the driver root, not on the host.
    symlink(
        format!("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{VERSION}"),
        lib.join("libnvidia-ml.so.1"),
    )
    .unwrap();
    write(&lib.join("libfoo.so.1"), "unrelated");
    write(&lib.join("libcuda.so.470.1.2"), "leftover of an older driver");
    // A 32-bit x86 ELF header: compat library, not mounted.
    let mut elf32 = b"\x7fELF\x01\x01\x01".to_vec();
    elf32.resize(18, 0);
    elf32.extend_from_slice(&3u16.to_le_bytes());
    fs::create_dir_all(drv.join("usr/lib")).unwrap();
    fs::write(drv.join(format!("usr/lib/libcuda.so.{VERSION}")), elf32).unwrap();

    // A library known only through the ld.so.cache.
    let opt = drv.join("opt/nvidia/lib");
    write(&opt.join(format!("libnvidia-cfg.so.{VERSION}")), "fake cfg");
    symlink(format!("libnvidia-cfg.so.{VERSION}"), opt.join("libnvidia-cfg.so.1")).unwrap();
    fs::create_dir_all(drv.join("etc")).unwrap();
    fs::write(
        drv.join("etc/ld.so.cache"),
        ldcache::new_table(&[
            ("libnvidia-cfg.so.1", "/opt/nvidia/lib/libnvidia-cfg.so.1"),
            ("libfoo.so.1", "/usr/lib/x86_64-linux-gnu/libfoo.so.1"),
        ]),
    )
    .unwrap();

    write_exec(
        &drv.join("usr/bin/nvidia-smi"),
        &format!(
            "#!/bin/sh\n[ \"$1\" = -L ] || exit 2\ncat <<'X'\n\
             GPU 0: NVIDIA H100 80GB HBM3 (UUID: {UUID0})\n\
             \x20 MIG 1g.10gb     Device  0: (UUID: {MIG_UUID})\n\
             GPU 1: NVIDIA H100 80GB HBM3 (UUID: {UUID1})\nX\n"
        ),
    );
    write_exec(&drv.join("usr/bin/nvidia-debugdump"), "#!/bin/sh\n");
    write(&drv.join(format!("lib/firmware/nvidia/{VERSION}/gsp.bin")), "fw");
    fs::create_dir_all(drv.join("run/nvidia-persistenced")).unwrap();
    let socket = UnixListener::bind(drv.join("run/nvidia-persistenced/socket")).unwrap();

    let caps = drv.join("proc/driver/nvidia/capabilities/gpu0/mig/gi1");
    write(
        &caps.join("access"),
        "DeviceFileMinor: 12\nDeviceFileMode: 292\nDeviceFileModify: 1\n",
    );
    write(
        &caps.join("ci0/access"),
        "DeviceFileMinor: 13\nDeviceFileMode: 292\nDeviceFileModify: 1\n",
    );

    Fake {
        _tmp: tmp,
        dev,
        drv,
        _socket: socket,
    }
}

fn options(fake: &Fake) -> Options {
    Options {
        dev_root: fake.dev.clone(),
        driver_root: fake.drv.clone(),
        nvidia_smi: None,
        hook_binary: PathBuf::from("/usr/local/bin/berthd"),
    }
}

fn device<'a>(spec: &'a Value, name: &str) -> &'a Value {
    spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no device {name} in {spec:#}"))
}

fn node_paths(edits: &Value) -> Vec<(String, String)> {
    edits["deviceNodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["path"].as_str().unwrap().to_string(),
                n["hostPath"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn discovers_fake_tree() {
    let fake = fake_tree();
    let d = discover(&options(&fake)).unwrap().unwrap();
    let spec = &d.spec;
    eprintln!("{spec:#}\n{:#?}", d.warnings);
    let dev = fake.dev.to_str().unwrap();
    let drv = fake.drv.to_str().unwrap();

    assert_eq!(spec["cdiVersion"], "0.5.0");
    assert_eq!(spec["kind"], "nvidia.com/gpu");
    assert_eq!(d.driver_version.as_deref(), Some(VERSION));

    // Devices, in order: by index (with MIG), by UUID, all.
    let names: Vec<&str> = spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "0:0", "1", UUID0, UUID1, MIG_UUID, "all"]);
    let gpu0 = vec![("/dev/nvidia0".to_string(), format!("{dev}/dev/nvidia0"))];
    let gpu1 = vec![("/dev/nvidia1".to_string(), format!("{dev}/dev/nvidia1"))];
    assert_eq!(node_paths(&device(spec, "0")["containerEdits"]), gpu0);
    assert_eq!(node_paths(&device(spec, UUID0)["containerEdits"]), gpu0);
    assert_eq!(node_paths(&device(spec, "1")["containerEdits"]), gpu1);
    assert_eq!(node_paths(&device(spec, UUID1)["containerEdits"]), gpu1);
    let mig = vec![
        (
            "/dev/nvidia-caps/nvidia-cap12".to_string(),
            format!("{dev}/dev/nvidia-caps/nvidia-cap12"),
        ),
        (
            "/dev/nvidia-caps/nvidia-cap13".to_string(),
            format!("{dev}/dev/nvidia-caps/nvidia-cap13"),
        ),
        ("/dev/nvidia0".to_string(), format!("{dev}/dev/nvidia0")),
    ];
    assert_eq!(node_paths(&device(spec, "0:0")["containerEdits"]), mig);
    assert_eq!(node_paths(&device(spec, MIG_UUID)["containerEdits"]), mig);
    let all: Vec<String> = node_paths(&device(spec, "all")["containerEdits"])
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(
        all,
        [
            "/dev/nvidia-caps/nvidia-cap12",
            "/dev/nvidia-caps/nvidia-cap13",
            "/dev/nvidia0",
            "/dev/nvidia1"
        ]
    );

    // Public structs.
    assert_eq!(d.gpus.len(), 2);
    assert_eq!(d.gpus[0].index, 0);
    assert_eq!(d.gpus[0].uuid.as_deref(), Some(UUID0));
    assert_eq!(d.gpus[0].node, PathBuf::from("/dev/nvidia0"));
    assert_eq!(
        d.gpus[0].mig,
        vec![Mig {
            gpu: 0,
            gi: 1,
            ci: 0,
            uuid: Some(MIG_UUID.to_string()),
            caps: vec![
                PathBuf::from("/dev/nvidia-caps/nvidia-cap12"),
                PathBuf::from("/dev/nvidia-caps/nvidia-cap13")
            ],
        }]
    );
    assert_eq!(d.gpus[1].uuid.as_deref(), Some(UUID1));
    assert!(d.gpus[1].mig.is_empty());

    // Common edits.
    let edits = &spec["containerEdits"];
    assert_eq!(edits["env"], json!(["NVIDIA_VISIBLE_DEVICES=void"]));
    assert_eq!(
        node_paths(edits),
        vec![
            ("/dev/nvidia-uvm".to_string(), format!("{dev}/dev/nvidia-uvm")),
            ("/dev/nvidiactl".to_string(), format!("{dev}/dev/nvidiactl")),
        ]
    );
    let mounts: Vec<(String, String)> = edits["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            assert_eq!(m["options"], json!(["ro", "nosuid", "nodev", "bind"]));
            (
                m["containerPath"].as_str().unwrap().to_string(),
                m["hostPath"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expect = |c: &str| (c.to_string(), format!("{drv}{c}"));
    assert_eq!(
        mounts,
        vec![
            expect(&format!("/lib/firmware/nvidia/{VERSION}")),
            expect(&format!("/opt/nvidia/lib/libnvidia-cfg.so.{VERSION}")),
            expect("/run/nvidia-persistenced/socket"),
            expect("/usr/bin/nvidia-debugdump"),
            expect("/usr/bin/nvidia-smi"),
            expect(&format!("/usr/lib/x86_64-linux-gnu/libcuda.so.{VERSION}")),
            expect(&format!("/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.{VERSION}")),
        ]
    );
    assert_eq!(
        edits["hooks"],
        json!([{
            "hookName": "createContainer",
            "path": "/usr/local/bin/berthd",
            "args": ["berthd", "cdi-hook", "update-ldcache",
                     "--folder", "/opt/nvidia/lib", "--folder", "/usr/lib/x86_64-linux-gnu"],
        }])
    );
    assert!(
        d.warnings.iter().any(|w| w.contains("libcuda.so.470.1.2")),
        "{:?}",
        d.warnings
    );

    // Same input, same bytes.
    let again = discover(&options(&fake)).unwrap().unwrap();
    assert_eq!(
        serde_json::to_string(&again.spec).unwrap(),
        serde_json::to_string(spec).unwrap()
    );
}

#[test]
fn proc_version_wins_and_works_without_nvidia_smi() {
    let fake = fake_tree();
    fs::remove_file(fake.drv.join("usr/bin/nvidia-smi")).unwrap();
    // The kernel module says 470.1.2: the 535 files are then the ones skipped.
    write(
        &fake.drv.join("proc/driver/nvidia/version"),
        "NVRM version: NVIDIA UNIX x86_64 Kernel Module  470.1.2  Sat Aug 19 01:15:15 UTC 2023\nGCC version: x\n",
    );
    let info = fake.drv.join("proc/driver/nvidia/gpus/0000:3b:00.0/information");
    write(
        &info,
        &format!("Model: \t\t NVIDIA H100\nGPU UUID: \t {UUID1}\nDevice Minor: \t 1\n"),
    );
    let d = discover(&options(&fake)).unwrap().unwrap();
    assert_eq!(d.driver_version.as_deref(), Some("470.1.2"));
    assert!(
        d.warnings.iter().any(|w| w.contains("nvidia-smi not found")),
        "{:?}",
        d.warnings
    );
    let names: Vec<&str> = d.spec["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["0", "1", UUID1, "all"]);
    assert_eq!(d.gpus[0].uuid, None);
    assert_eq!(d.gpus[1].uuid.as_deref(), Some(UUID1));
    let mounts = d.spec["containerEdits"]["mounts"].to_string();
    assert!(mounts.contains("libcuda.so.470.1.2"), "{mounts}");
    assert!(!mounts.contains(&format!("libcuda.so.{VERSION}")), "{mounts}");
    assert!(!mounts.contains("nvidia-smi"), "{mounts}");
    assert!(!mounts.contains("libfoo"), "{mounts}");
}

#[test]
fn failing_nvidia_smi_is_a_warning() {
    let fake = fake_tree();
    let mut opts = options(&fake);
    opts.nvidia_smi = Some(fake.drv.join("usr/bin/nvidia-debugdump-missing"));
    let d = discover(&opts).unwrap().unwrap();
    assert!(d.warnings.iter().any(|w| w.contains("-L failed")), "{:?}", d.warnings);
    assert_eq!(d.gpus.len(), 2);
    assert!(d.gpus.iter().all(|g| g.uuid.is_none() && g.mig.is_empty()));
}

#[test]
fn no_gpu_means_none() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = Options {
        dev_root: tmp.path().to_path_buf(),
        driver_root: tmp.path().to_path_buf(),
        nvidia_smi: None,
        hook_binary: PathBuf::from("/bin/berthd"),
    };
    // No dev folder at all.
    assert!(discover(&opts).unwrap().is_none());
    // Control node and a regular file named like a GPU node: still no GPU.
    mknod(&tmp.path().join("dev/nvidiactl"), 195, 255);
    write(&tmp.path().join("dev/nvidia0"), "");
    assert!(discover(&opts).unwrap().is_none());
}

#[test]
fn host_path_omitted_for_real_root() {
    let opts = Options {
        dev_root: PathBuf::from("/"),
        driver_root: PathBuf::from("/"),
        nvidia_smi: None,
        hook_binary: PathBuf::from("/bin/berthd"),
    };
    let gpu = FoundGpu {
        public: Gpu {
            index: 0,
            uuid: None,
            node: PathBuf::from("/dev/nvidia0"),
            mig: Vec::new(),
        },
        host_node: PathBuf::from("/dev/nvidia0"),
        migs: Vec::new(),
    };
    let spec = build_spec(
        &opts,
        &[gpu],
        &[PathBuf::from("/dev/nvidiactl")],
        &BTreeMap::new(),
        &BTreeSet::new(),
        &mut Vec::new(),
    );
    assert_eq!(
        device(&spec, "0")["containerEdits"]["deviceNodes"],
        json!([{ "path": "/dev/nvidia0" }])
    );
    assert_eq!(
        spec["containerEdits"]["deviceNodes"],
        json!([{ "path": "/dev/nvidiactl" }])
    );
    assert!(spec["containerEdits"].get("hooks").is_none());
}

#[test]
fn parses_smi_list() {
    let out = "GPU 0: NVIDIA A100-SXM4-40GB (UUID: GPU-aaa)\n\
               \x20 MIG 1g.5gb      Device  0: (UUID: MIG-111)\n\
               \x20 MIG 1g.5gb      Device  1: (UUID: MIG-GPU-aaa/2/0)\n\
               GPU 1: Tesla T4 (UUID: GPU-bbb)\n\
               garbage line\n";
    let gpus = parse_smi_list(out);
    assert_eq!(gpus.len(), 2);
    assert_eq!(gpus[0].uuid.as_deref(), Some("GPU-aaa"));
    assert_eq!(gpus[0].migs[0].index, 0);
    assert_eq!(gpus[0].migs[0].ids, None);
    assert_eq!(gpus[0].migs[1].ids, Some((2, 0)));
    assert_eq!(gpus[1].index, 1);
    assert!(gpus[1].migs.is_empty());
}

#[test]
fn glob_and_versions() {
    assert!(is_driver_library("libcuda.so.1"));
    assert!(is_driver_library("libcuda.so"));
    assert!(!is_driver_library("libcudart.so.12"));
    assert!(is_driver_library("libnvidia-pkcs11-openssl3.so.535.104.05"));
    assert!(!is_driver_library("libnvidia-pkcs11.a"));
    assert!(is_driver_library("libGLX_nvidia.so.0"));
    assert!(!is_driver_library("libGLX_mesa.so.0"));
    assert!(glob_match("a*b*c", "a-b-c"));
    assert!(!glob_match("a*bc", "abc-"));
    assert_eq!(
        library_version(Path::new("/x/libcuda.so.535.104.05")).as_deref(),
        Some("535.104.05")
    );
    assert_eq!(library_version(Path::new("/x/libcuda.so.1")), None);
    assert!(is_driver_version("550.54"));
    assert!(!is_driver_version("x86_64"));
}

#[test]
fn detects_existing_specs() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b, c) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("c"));
    for d in [&a, &b, &c] {
        fs::create_dir_all(d).unwrap();
    }
    write(
        &a.join("other.json"),
        r#"{"cdiVersion":"0.5.0","kind":"vendor.com/fpga"}"#,
    );
    write(&a.join("notes.txt"), "kind: nvidia.com/gpu\n");
    write(
        &a.join("other.yaml"),
        "cdiVersion: 0.5.0\nkind: vendor.com/fpga\n  kind: nvidia.com/gpu\n",
    );
    let missing = tmp.path().join("missing");
    assert!(!has_nvidia_spec(&[a.clone(), missing.clone()], "berth-nvidia.json"));
    write(
        &b.join("nvidia.yaml"),
        "---\ncdiVersion: \"0.5.0\"\nkind: \"nvidia.com/gpu\"\ndevices: []\n",
    );
    assert!(has_nvidia_spec(&[a.clone(), b.clone()], "berth-nvidia.json"));
    write(&c.join("gpu.yml"), "kind: 'nvidia.com/gpu'   # generated\n");
    assert!(has_nvidia_spec(&[missing.clone(), c.clone()], "berth-nvidia.json"));
    fs::remove_file(c.join("gpu.yml")).unwrap();
    write(
        &c.join("x.json"),
        "{\n  \"kind\": \"nvidia.com/gpu\",\n  \"devices\": []\n}\n",
    );
    assert!(has_nvidia_spec(&[c], "berth-nvidia.json"));
}

#[test]
fn writes_spec_atomically() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("etc/cdi");
    let spec = json!({ "cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": [] });
    let path = write_spec(&dir, "nvidia.json", &spec).unwrap();
    assert_eq!(path, dir.join("nvidia.json"));
    assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    let back: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, spec);
    let spec2 = json!({ "cdiVersion": "0.5.0", "kind": "nvidia.com/gpu", "devices": [{"name": "0"}] });
    write_spec(&dir, "nvidia.json", &spec2).unwrap();
    let back: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    assert_eq!(back, spec2);
    let names: Vec<OsString> = fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names, [OsString::from("nvidia.json")]);
    assert!(has_nvidia_spec(&[dir], "berth-nvidia.json"));
}

fn libz() -> Option<PathBuf> {
    [
        "/lib/x86_64-linux-gnu/libz.so.1",
        "/usr/lib/x86_64-linux-gnu/libz.so.1",
        "/lib64/libz.so.1",
    ]
    .into_iter()
    .map(Path::new)
    .find(|p| p.exists())
    .map(|p| fs::canonicalize(p).unwrap())
}

fn bundle(tmp: &Path) -> (PathBuf, Vec<u8>) {
    let bundle = tmp.join("bundle");
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    write(
        &bundle.join("config.json"),
        r#"{"ociVersion":"1.1.0","root":{"path":"rootfs"}}"#,
    );
    let state = json!({ "ociVersion": "1.1.0", "id": "c1", "status": "creating", "pid": 1, "bundle": bundle });
    (rootfs, serde_json::to_vec(&state).unwrap())
}

#[test]
fn update_ldcache_runs_ldconfig() {
    let Some(libz) = libz() else {
        eprintln!("no libz on this machine; skipping");
        return;
    };
    if find_ldconfig().is_none() {
        eprintln!("no ldconfig on this machine; skipping");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (rootfs, state) = bundle(tmp.path());
    write(&rootfs.join("etc/ld.so.conf"), "include /etc/ld.so.conf.d/*.conf\n");
    let real_name = libz.file_name().unwrap();
    let fakenv = rootfs.join("usr/lib/fakenv");
    fs::create_dir_all(&fakenv).unwrap();
    fs::copy(&libz, fakenv.join(real_name)).unwrap();

    let folders = [PathBuf::from("/usr/lib/fakenv"), PathBuf::from("/opt/other")];
    update_ldcache(&state, &folders).unwrap();

    let conf = fs::read_to_string(rootfs.join("etc/ld.so.conf.d/00-berth-cdi.conf")).unwrap();
    assert_eq!(conf, "/usr/lib/fakenv\n/opt/other\n");
    let cache = fs::read(rootfs.join("etc/ld.so.cache")).unwrap();
    let needle = b"/usr/lib/fakenv/libz.so.1";
    assert!(cache.windows(needle.len()).any(|w| w == needle));
    let entries = ldcache::read(&rootfs.join("etc/ld.so.cache")).unwrap();
    assert!(entries
        .iter()
        .any(|e| e.soname == "libz.so.1" && e.path == Path::new("/usr/lib/fakenv/libz.so.1")));
    // ldconfig made the soname link next to the real file.
    assert_eq!(
        fs::read_link(fakenv.join("libz.so.1")).unwrap(),
        PathBuf::from(real_name)
    );

    // Running again (the conf file exists) works too.
    update_ldcache(&state, &folders[..1]).unwrap();
    let conf = fs::read_to_string(rootfs.join("etc/ld.so.conf.d/00-berth-cdi.conf")).unwrap();
    assert_eq!(conf, "/usr/lib/fakenv\n");
}

#[test]
fn update_ldcache_without_etc_and_with_inner_symlink() {
    if find_ldconfig().is_none() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (rootfs, state) = bundle(tmp.path());
    update_ldcache(&state, &[PathBuf::from("/usr/lib/x")]).unwrap();
    assert!(rootfs.join("etc/ld.so.conf.d/00-berth-cdi.conf").is_file());

    // A symlink staying inside the rootfs is fine.
    let tmp = tempfile::tempdir().unwrap();
    let (rootfs, state) = bundle(tmp.path());
    fs::create_dir_all(rootfs.join("usr/etc")).unwrap();
    symlink("usr/etc", rootfs.join("etc")).unwrap();
    update_ldcache(&state, &[PathBuf::from("/usr/lib/x")]).unwrap();
    assert!(rootfs.join("usr/etc/ld.so.conf.d/00-berth-cdi.conf").is_file());
}

#[test]
fn update_ldcache_refuses_symlink_escape() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside-dir");
    fs::create_dir_all(&outside).unwrap();

    let (rootfs, state) = bundle(&tmp.path().join("one"));
    symlink(&outside, rootfs.join("etc")).unwrap();
    let err = update_ldcache(&state, &[PathBuf::from("/usr/lib/x")]).unwrap_err();
    assert!(err.to_string().contains("outside"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    let (rootfs, state) = bundle(&tmp.path().join("two"));
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    symlink("../../../outside-dir", rootfs.join("etc/ld.so.conf.d")).unwrap();
    assert!(update_ldcache(&state, &[PathBuf::from("/usr/lib/x")]).is_err());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);

    // A dangling link is refused as well.
    let (rootfs, state) = bundle(&tmp.path().join("three"));
    symlink("/nonexistent-berth-test", rootfs.join("etc")).unwrap();
    assert!(update_ldcache(&state, &[PathBuf::from("/usr/lib/x")]).is_err());
}

#[test]
fn update_ldcache_rejects_bad_input() {
    assert!(update_ldcache(b"not json", &[]).is_err());
    assert!(update_ldcache(b"{}", &[]).is_err());
    let tmp = tempfile::tempdir().unwrap();
    let (_rootfs, state) = bundle(tmp.path());
    assert!(update_ldcache(&state, &[PathBuf::from("relative/dir")]).is_err());
    assert!(update_ldcache(&state, &[PathBuf::from("/a\nb")]).is_err());
}

#[test]
fn gpus_flag() {
    let names = |v: &str| gpus_flag_to_cdi(v).unwrap();
    assert_eq!(names("all"), ["nvidia.com/gpu=all"]);
    assert_eq!(names(" all "), ["nvidia.com/gpu=all"]);
    assert_eq!(names("2"), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
    assert_eq!(names("count=2"), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
    assert_eq!(names("count=all"), ["nvidia.com/gpu=all"]);
    assert_eq!(names("device=0,2"), ["nvidia.com/gpu=0", "nvidia.com/gpu=2"]);
    assert_eq!(names("\"device=0,1\""), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
    assert_eq!(names("'device=0,1'"), ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]);
    assert_eq!(names("device=GPU-1234-abcd"), ["nvidia.com/gpu=GPU-1234-abcd"]);
    assert_eq!(names("device=0:1"), ["nvidia.com/gpu=0:1"]);
    assert_eq!(
        names("capabilities=compute,utility,\"device=1,3\""),
        ["nvidia.com/gpu=1", "nvidia.com/gpu=3"]
    );
    assert_eq!(names("driver=nvidia,count=1"), ["nvidia.com/gpu=0"]);
    assert_eq!(names("capabilities=compute"), ["nvidia.com/gpu=0"]);
    for bad in [
        "",
        "  ",
        "\"\"",
        "0",
        "count=0",
        "banana",
        "-3",
        "count=x",
        "device=",
        "device=0,,1",
        "foo=bar",
        "count=1,count=2",
        "count=2,\"device=0,1\"",
        "driver=amd",
        "device=a/b",
        "\"device=0",
    ] {
        let err = gpus_flag_to_cdi(bad).unwrap_err();
        assert!(!err.is_empty(), "{bad:?}");
    }
}
