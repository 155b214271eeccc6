"""Lint and render charts/berth with Helm's own Go SDK (helm-python-sdk from PyPI), parse
every rendered document as YAML, and check that the values reach the objects.

    python chart_check.py CHART_DIR VALUES_ALL_ON OUT_DIR

OUT_DIR/<case>/ receives each case's rendered manifest (all.yaml) and the data of its
ConfigMap as files, the way kubelet mounts it; install_test.sh runs the DaemonSet's node
script against those. Prints one "ok"/"FAIL" line per check and exits 1 on any failure.
"""

import json
import os
import sys
import tomllib

import helm_python as helm
import yaml

FAILED = []
PASSED = 0


def check(cond, what):
    global PASSED
    if cond:
        PASSED += 1
        print(f"  ok   {what}")
    else:
        FAILED.append(what)
        print(f"  FAIL {what}")


def render(chart_dir, values, name="berth", namespace="kube-system"):
    with helm.Chart.load(chart_dir) as chart:
        out = chart.render(values, name=name, namespace=namespace, is_install=True)
    docs, notes = [], ""
    for path, text in sorted(out.items()):
        if path.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc is not None:
                docs.append((path, doc))
    return docs, notes, out


def kinds(docs):
    found = {}
    for _, d in docs:
        found.setdefault(d["kind"], []).append(d)
    return found


def one(found, kind):
    objs = found.get(kind, [])
    return objs[0] if len(objs) == 1 else None


def write_case(out_dir, case, rendered, found):
    d = os.path.join(out_dir, case)
    os.makedirs(os.path.join(d, "configmap"), exist_ok=True)
    with open(os.path.join(d, "all.yaml"), "w") as f:
        for path, text in sorted(rendered.items()):
            if not path.endswith("NOTES.txt"):
                f.write(f"# Source: {path}\n{text}\n---\n")
    cm = one(found, "ConfigMap")
    for key, text in (cm or {}).get("data", {}).items():
        p = os.path.join(d, "configmap", key)
        with open(p, "w") as f:
            f.write(text)
        if key.endswith(".sh"):
            os.chmod(p, 0o755)


def common(case, docs, found, chart_dir):
    print(f"[{case}] {len(docs)} documents")
    for path, d in docs:
        check(
            isinstance(d, dict) and d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
            f"{case}: {path} has apiVersion, kind and metadata.name",
        )
    for kind in ("DaemonSet", "ConfigMap", "ServiceAccount"):
        check(one(found, kind) is not None, f"{case}: exactly one {kind}")
    ds, cm = one(found, "DaemonSet"), one(found, "ConfigMap")
    if not ds or not cm:
        return None, None, None
    pod = ds["spec"]["template"]["spec"]
    check(pod.get("hostPID") is True and pod.get("hostNetwork") is True, f"{case}: DaemonSet uses host PID and network")
    init = pod["initContainers"][0]
    check(init["securityContext"].get("privileged") is True, f"{case}: installer is privileged")
    mounts = {m["name"]: m for m in init["volumeMounts"]}
    host_vol = [v for v in pod["volumes"] if v["name"] == "host"][0]
    check(host_vol["hostPath"]["path"] == "/" and mounts["host"]["mountPath"] == "/host", f"{case}: host root at /host")
    cm_vol = [v for v in pod["volumes"] if v["name"] == "chart"][0]
    check(cm_vol["configMap"]["name"] == cm["metadata"]["name"], f"{case}: DaemonSet mounts the ConfigMap")
    sel = ds["spec"]["selector"]["matchLabels"]
    labels = ds["spec"]["template"]["metadata"]["labels"]
    check(all(labels.get(k) == v for k, v in sel.items()), f"{case}: selector matches pod labels")
    data = cm["data"]
    for script in ("node-install.sh", "node-watch.sh"):
        with open(os.path.join(chart_dir, "files", script)) as f:
            check(data.get(script) == f.read(), f"{case}: ConfigMap carries files/{script} unchanged")
    try:
        config = tomllib.loads(data["50-helm.toml"])
        check(True, f"{case}: 50-helm.toml parses as TOML")
    except (KeyError, tomllib.TOMLDecodeError) as e:
        check(False, f"{case}: 50-helm.toml parses as TOML ({e})")
        config = {}
    env = {e["name"]: e["value"] for e in init["env"]}
    return pod, config, env


def main():
    chart_dir, all_on_file, out_dir = sys.argv[1:4]
    print(f"renderer: Helm Go SDK {helm.helm_sdk_version()} via helm-python-sdk (libhelm_c {helm.helm_c_version()})")

    with open(all_on_file) as f:
        all_on = yaml.safe_load(f)

    for case, values in (("default", None), ("all-on", all_on)):
        report = helm.lint(chart_dir, values, strict=True, namespace="kube-system")
        problems = [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]
        for m in problems:
            print(f"       lint: {m}")
        check(not problems, f"{case}: helm lint --strict has no warnings or errors")

    # Default values.
    docs, notes, rendered = render(chart_dir, {})
    found = kinds(docs)
    write_case(out_dir, "default", rendered, found)
    pod, config, env = common("default", docs, found, chart_dir)
    if pod:
        check(config.get("default_runtime") == "runc" and config.get("cgroup_driver") == "systemd", "default: runtime and cgroup driver")
        check(config.get("metrics", {}).get("address") == "0.0.0.0:9838", "default: metrics address in config")
        gvisor = {"kind": "gvisor", "binary": "runsc", "args": ["--platform=ptrace", "--network=host", "--oci-seccomp"]}
        check(
            config.get("runtime_handlers")
            == {"runc": "runc", "crun": "crun", "runsc": gvisor, "runc-shim-v2": {"kind": "shim-v2", "binary": "containerd-shim-runc-v2", "args": [], "features_from": "runc"}},
            "default: runtime handlers runc, crun, runsc (gVisor) and runc-shim-v2 (shim v2), table forms, in config",
        )
        check(config.get("cdi") == {"enabled": True, "spec_dirs": ["/etc/cdi", "/var/run/cdi"], "nvidia_discovery": True}, "default: [cdi] on with NVIDIA discovery")
        check(pod["initContainers"][0]["image"] == "berth:0.1.0", "default: image berth:<appVersion>")
        check(env["BERTH_MODE"] == "install" and env["BERTH_DEFAULT_NETWORK"] == "false", "default: installer env")
        check("nodeSelector" not in pod and pod["tolerations"] == [{"operator": "Exists"}], "default: every node")
    rcs = {o["metadata"]["name"]: o["handler"] for o in found.get("RuntimeClass", [])}
    check(
        rcs == {"berth-runc": "runc", "berth-crun": "crun", "gvisor": "runsc", "berth-runc-shim-v2": "runc-shim-v2"},
        f"default: RuntimeClasses {rcs}",
    )
    check(len(found.get("Service", [])) == 1, "default: metrics Service")
    check("ServiceMonitor" not in found, "default: no ServiceMonitor")
    check("switch" in notes.lower() and "containerRuntimeEndpoint" in notes, "default: NOTES explain switching kubelet")

    # Everything on.
    docs, notes, rendered = render(chart_dir, all_on, name="edge", namespace="berth-system")
    found = kinds(docs)
    write_case(out_dir, "all-on", rendered, found)
    pod, config, env = common("all-on", docs, found, chart_dir)
    if pod:
        check(config.get("registry_mirrors") == all_on["config"]["registry"]["mirrors"], "all-on: mirrors in config")
        check(config.get("insecure_registries") == ["registry.example.test:5000"], "all-on: insecure registries in config")
        check(config.get("registry_auth_file") == "/etc/berth/auth.json", "all-on: auth file in config")
        check(config.get("log_level") == "berth=debug,h2=info" and config.get("log_format") == "json", "all-on: logging")
        check(config.get("default_runtime") == "crun", "all-on: default runtime")
        check(config.get("runtime_handlers", {}).get("crun") == "/usr/bin/crun", "all-on: runtime_handlers.crun")
        check(set(config.get("runtime_handlers", {})) == {"runc", "crun", "runsc", "runc-shim-v2", "nvidia", "youki"}, "all-on: every handler in config")
        check(config.get("cdi") == {"enabled": True, "spec_dirs": ["/etc/cdi", "/var/run/cdi"], "nvidia_discovery": True}, "all-on: [cdi]")
        check(config.get("metrics", {}).get("address") == "0.0.0.0:9839", "all-on: metrics port")
        check(config.get("streaming") == {"address": "0.0.0.0", "port": 10010}, "all-on: streaming")
        check(config.get("cni_bin_dirs") == ["/opt/cni/bin"], "all-on: CNI plugin dirs")
        cm = one(found, "ConfigMap")["data"]
        try:
            extra = tomllib.loads(cm.get("51-helm-extra.toml", ""))
        except tomllib.TOMLDecodeError:
            extra = {}
        check(extra.get("limits", {}).get("max_layers") == 200, "all-on: extra drop-in parses and carries its keys")
        hosts = sorted(k for k in cm if k.startswith("registry-host."))
        check(hosts == ["registry-host.ghcr.example.test.toml", "registry-host.registry.example.test_5000.toml"], f"all-on: registry host entries {hosts}")
        for k in hosts:
            try:
                tomllib.loads(cm[k])
                check(cm[k].startswith("# berth-host: "), f"all-on: {k} is TOML with its host line")
            except tomllib.TOMLDecodeError as e:
                check(False, f"all-on: {k} parses as TOML ({e})")
        check(pod.get("nodeSelector") == {"berth.example.test/runtime": "berth"}, "all-on: nodeSelector")
        check(pod["tolerations"][0]["key"] == "node-role.kubernetes.io/control-plane", "all-on: tolerations")
        check("nodeAffinity" in pod.get("affinity", {}), "all-on: affinity")
        check(pod["imagePullSecrets"] == [{"name": "regcred"}], "all-on: image pull secrets")
        check(pod["serviceAccountName"] == "berth-installer", "all-on: service account name")
        check(pod["initContainers"][0]["image"] == "registry.example.test:5000/berth:0.1.0-test", "all-on: image")
        check(env["BERTH_RUNTIME"] == "crun" and env["BERTH_PREFIX"] == "/opt/berth-test" and env["BERTH_ALWAYS_RESTART"] == "true", "all-on: installer env")
        probe = pod["containers"][0]["readinessProbe"]["exec"]["command"]
        check("/opt/berth-test/bin/berthctl" in probe, "all-on: probe uses the prefix")
        check(pod["containers"][0]["ports"][0]["containerPort"] == 9839, "all-on: metrics port on the pod")
    rcs = {o["metadata"]["name"]: o for o in found.get("RuntimeClass", [])}
    check(sorted(rcs) == ["berth-crun", "berth-runc", "berth-runc-shim-v2", "gvisor", "nvidia"], f"all-on: RuntimeClasses {sorted(rcs)} (youki opted out)")
    if "nvidia" in rcs:
        rc = rcs["nvidia"]
        check(rc["handler"] == "nvidia" and rc["scheduling"]["nodeSelector"] == {"nvidia.com/gpu.present": "true"}, "all-on: nvidia RuntimeClass scheduling")
        check(rcs["berth-crun"]["overhead"] == {"podFixed": {"memory": "16Mi"}}, "all-on: crun overhead")
        check(rcs["berth-runc"]["scheduling"]["nodeSelector"] == {"berth.example.test/runtime": "berth"}, "all-on: RuntimeClass follows nodeSelector")
    svc = one(found, "Service")
    check(svc is not None and svc["spec"]["ports"][0]["port"] == 9839 and svc["metadata"]["labels"].get("team") == "nodes", "all-on: Service")
    sm = one(found, "ServiceMonitor")
    check(sm is not None and sm["spec"]["endpoints"][0]["interval"] == "15s" and sm["metadata"]["labels"].get("release") == "prometheus", "all-on: ServiceMonitor")
    if sm and svc:
        check(all(svc["metadata"]["labels"].get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), "all-on: ServiceMonitor selects the Service")
    check(all(o["metadata"].get("namespace") in (None, "berth-system") for _, o in docs), "all-on: namespaced objects in the release namespace")
    check("berth-system" in notes and "nvidia" in notes, "all-on: NOTES name the namespace and RuntimeClasses")

    # Removal mode, and metrics off.
    docs, notes, rendered = render(chart_dir, {"uninstall": {"enabled": True, "keepData": True}, "metrics": {"enabled": False}})
    found = kinds(docs)
    write_case(out_dir, "uninstall", rendered, found)
    pod, config, env = common("uninstall", docs, found, chart_dir)
    if pod:
        check(env["BERTH_MODE"] == "uninstall" and env["BERTH_KEEP_DATA"] == "true", "uninstall: installer env")
        check("readinessProbe" not in pod["containers"][0], "uninstall: no readiness probe")
        check(config.get("metrics", {}).get("address") == "", "uninstall: metrics off in config")
    check("Service" not in found and "ServiceMonitor" not in found, "uninstall: no metrics Service")
    check("helm -n kube-system uninstall" in notes, "uninstall: NOTES say how to finish")

    # A bad handler name must fail the render.
    try:
        render(chart_dir, {"runtimes": {"Bad_Name": {"binary": "runc"}}})
        check(False, "bad handler name is refused")
    except helm.HelmError:
        check(True, "bad handler name is refused")

    with open(os.path.join(out_dir, "result.json"), "w") as f:
        json.dump({"passed": PASSED, "failed": FAILED}, f)
    print(f"chart: {PASSED} passed, {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
