#!/usr/bin/env python3
"""Checks of deploy/ (docs/deploy.md): the Kubernetes manifests and the
Dockerfile are read and cross-checked against this tree, and the manifests'
node commands are run for real, as a pod would run them.

Static checks (what a typo in a manifest or the Dockerfile would break):
- every YAML document has apiVersion, kind and metadata.name; each
  Deployment's selector matches its pod labels; each Service selects a
  Deployment and targets ports that Deployment names; each secret volume
  names a Secret defined here; every mount names a volume;
- a container's args are a `rayc start` command line whose every flag
  `rayc start --help` lists; probes run `rayc` verbs that exist;
- a token file a node is given lies under a mounted secret;
- the Dockerfile copies what exists, runs make targets that exist, and its
  run stage installs (Debian 12 package names that exist) every shared
  library the installed binaries load.

Behaviour (real processes, private temp dirs, all stopped at the end):
- the head's and the worker's args from the manifests (POD_IP = 127.0.0.1,
  free ports) start a two-node cluster in the foreground (--block);
  `rayc health-check` and `rayc status` pass on both;
- SIGTERM to the worker: it drains (the GCS lists it DEAD at once, not
  after the health timeout) and exits 0;
- a head whose raylet is killed exits non-zero (Kubernetes restarts it).
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
RAYC = os.path.join(ROOT, "scripts", "rayc")
K8S = os.path.join(ROOT, "deploy", "k8s")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what)
    return cond


def load_docs():
    docs = []
    for name in sorted(os.listdir(K8S)):
        if name.endswith(".yaml"):
            with open(os.path.join(K8S, name)) as f:
                for d in yaml.safe_load_all(f):
                    if d is not None:
                        docs.append((name, d))
    return docs


def rayc_help(*args):
    r = subprocess.run([RAYC, *args, "--help"], capture_output=True, text=True)
    return r.returncode, r.stdout + r.stderr


def static_checks(docs):
    _, start_help = rayc_help("start")
    start_flags = set(re.findall(r"--[a-z][a-z-]*", start_help))
    _, top_help = rayc_help()
    verbs = set(re.findall(r"^  ([a-z][a-z-]*)", top_help, re.M))
    secrets = {d["metadata"]["name"] for _, d in docs if d.get("kind") == "Secret"}
    deployments = [(n, d) for n, d in docs if d.get("kind") == "Deployment"]
    check(len(deployments) == 2, "a head and a worker Deployment")
    for name, d in docs:
        where = "%s: %s" % (name, d.get("kind"))
        check(d.get("apiVersion") and d.get("kind") and d.get("metadata", {}).get("name"),
              where + ": apiVersion, kind and metadata.name")
    for name, d in deployments:
        spec = d["spec"]
        pod = spec["template"]
        labels = pod["metadata"]["labels"]
        sel = spec["selector"]["matchLabels"]
        check(all(labels.get(k) == v for k, v in sel.items()), name + ": selector matches the pod labels")
        podspec = pod["spec"]
        vols = {v["name"]: v for v in podspec.get("volumes", [])}
        for v in vols.values():
            if "secret" in v:
                check(v["secret"]["secretName"] in secrets, name + ": secret %s defined" % v["secret"]["secretName"])
        for c in podspec["containers"]:
            check(bool(c.get("image")), name + ": image")
            args = c.get("args", [])
            check(args[:1] == ["start"], name + ": args are a rayc start command")
            for a in args[1:]:
                flag = a.split("=", 1)[0]
                check(flag in start_flags, name + ": rayc start accepts " + flag)
            mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
            for m in mounts.values():
                check(m["name"] in vols, name + ": mount of a defined volume " + m["name"])
            token_files = [a.split("=", 1)[1] for a in args if a.startswith("--token-file=")]
            token_files += [e["value"] for e in c.get("env", []) if e["name"] == "RAYC_TOKEN_FILE"]
            check(token_files, name + ": the node is given the token file")
            for tf in token_files:
                check(any(tf.startswith(p.rstrip("/") + "/") and "secret" in vols[mounts[p]["name"]]
                          for p in mounts), name + ": token file %s is in a mounted secret" % tf)
            for probe in ("readinessProbe", "livenessProbe"):
                cmd = c.get(probe, {}).get("exec", {}).get("command", [])
                check(cmd[:1] == ["rayc"] and len(cmd) > 1 and cmd[1] in verbs,
                      name + ": %s runs a rayc verb (%s)" % (probe, cmd))
                if len(cmd) > 1:
                    rc, _ = rayc_help(*cmd[1:])
                    check(rc == 0, name + ": `%s --help` works" % " ".join(cmd))
    for name, d in docs:
        if d.get("kind") != "Service":
            continue
        sel = d["spec"]["selector"]
        target = None
        for _, dep in deployments:
            labels = dep["spec"]["template"]["metadata"]["labels"]
            if all(labels.get(k) == v for k, v in sel.items()):
                target = dep
        if check(target is not None, name + ": the Service selects a Deployment"):
            ports = {p.get("name") for c in target["spec"]["template"]["spec"]["containers"]
                     for p in c.get("ports", [])}
            for p in d["spec"]["ports"]:
                check(p["targetPort"] in ports, name + ": targetPort %s is a named container port" % p["targetPort"])


def dockerfile_checks():
    path = os.path.join(ROOT, "deploy", "Dockerfile")
    text = open(path).read().replace("\\\n", " ")
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    stages = [l for l in lines if l.startswith("FROM ")]
    check(len(stages) == 2 and all("debian:12" in s for s in stages), "Dockerfile: two Debian 12 stages")
    check(any(l.startswith("ENTRYPOINT") and '"rayc"' in l for l in lines), "Dockerfile: entrypoint rayc")
    cmd = [l for l in lines if l.startswith("CMD")]
    check(cmd and "--block" in cmd[0], "Dockerfile: default command blocks")
    for l in lines:
        if l.startswith("COPY ") and "--from" not in l:
            src = l.split()[1]
            check(os.path.exists(os.path.join(ROOT, src)), "Dockerfile: COPY source %s exists" % src)
        for m in re.finditer(r"make( -j\S+)? ([a-z]+)( PREFIX=\S+)?( DESTDIR=\S+)?", l):
            r = subprocess.run(["make", "-n", "-C", ROOT, m.group(2)] +
                               [x.strip() for x in (m.group(3), m.group(4)) if x],
                               capture_output=True, text=True)
            check(r.returncode == 0, "Dockerfile: make %s exists (%s)" % (m.group(2), r.stderr.strip()[:200]))
    # The run stage: every package exists, and covers every library the
    # binaries load.
    run_stage = text[text.rindex("FROM "):]
    m = re.search(r"apt-get install ([^&]*)", run_stage)
    pkgs = [p for p in m.group(1).split() if not p.startswith("-")] if m else []
    check(pkgs, "Dockerfile: the run stage installs packages")
    for p in pkgs:
        r = subprocess.run(["apt-cache", "show", "--no-all-versions", p], capture_output=True, text=True)
        check(r.returncode == 0, "Dockerfile: Debian has package " + p)
    build = os.path.join(ROOT, os.environ.get("RAYC_BUILD", "build"))
    bins = [os.path.join(build, "bin", b) for b in os.listdir(os.path.join(build, "bin"))]
    bins.append(os.path.join(build, "lib", "librayc.so"))
    needed = set()
    for b in bins:
        r = subprocess.run(["ldd", b], capture_output=True, text=True)
        for lib in re.findall(r"=> (/\S+)", r.stdout):
            needed.add(os.path.realpath(lib))
    for lib in sorted(needed):
        r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", lib.replace("/usr/lib/", "/lib/", 1)], capture_output=True, text=True)
        owner = r.stdout.split(":")[0] if r.returncode == 0 else "?"
        if owner in ("libc6", "libgcc-s1", "libstdc++6"):
            continue  # in every Debian image
        check(owner in pkgs, "Dockerfile: the run stage installs %s (for %s)" % (owner, lib))


# ------------------------------------------------------------ behaviour

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def node_args(args, pod_ip, port, dash):
    out = []
    for a in args:
        a = a.replace("$(POD_IP)", pod_ip)
        a = re.sub(r"^--port=\d+$", "--port=%d" % port, a)
        a = re.sub(r"^--dashboard-port=\d+$", "--dashboard-port=%d" % dash, a)
        a = re.sub(r"^--address=rayc-head:\d+$", "--address=127.0.0.1:%d" % port, a)
        a = re.sub(r"^--num-cpus=\d+$", "--num-cpus=1", a)
        a = re.sub(r"^--object-store-memory=.*$", "--object-store-memory=64M", a)
        a = a.replace("--dashboard-host=0.0.0.0", "--dashboard-host=127.0.0.1")
        out.append(a)
    return out


def wait_for(pred, secs):
    end = time.time() + secs
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.2)
    return False


def behaviour_checks(docs):
    deps = {d["metadata"]["name"]: d for _, d in docs if d.get("kind") == "Deployment"}
    head_c = deps["rayc-head"]["spec"]["template"]["spec"]["containers"][0]
    worker_c = deps["rayc-worker"]["spec"]["template"]["spec"]["containers"][0]
    work = tempfile.mkdtemp(prefix="rayc-deploy-")
    os.chmod(work, 0o700)
    secret_dir = os.path.join(work, "etc-rayc")
    os.mkdir(secret_dir, 0o700)
    with open(os.path.join(secret_dir, "token"), "w") as f:
        f.write(os.urandom(32).hex())
    port, dash = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAYC_")}
    env["RAYC_BIN_DIR"] = os.path.join(ROOT, os.environ.get("RAYC_BUILD", "build"), "bin")
    procs = []

    def node_env(c, tmp):
        e = dict(env, RAYC_TEMP_DIR=tmp)
        for v in c.get("env", []):
            if "value" in v:
                e[v["name"]] = v["value"].replace("/etc/rayc", secret_dir)
        return e

    def start(c, name):
        tmp = os.path.join(work, name)
        os.mkdir(tmp, 0o700)
        args = [a.replace("/etc/rayc", secret_dir) for a in node_args(c["args"], "127.0.0.1", port, dash)]
        p = subprocess.Popen([RAYC, *args], env=node_env(c, tmp), stdout=open(os.path.join(work, name + ".log"), "w"),
                             stderr=subprocess.STDOUT)
        procs.append((p, tmp))
        return p, tmp

    def probe(c, which, tmp):
        cmd = c[which]["exec"]["command"]
        r = subprocess.run([RAYC] + cmd[1:], env=node_env(c, tmp), capture_output=True, text=True)
        return r.returncode == 0

    try:
        head, head_tmp = start(head_c, "head")
        check(wait_for(lambda: probe(head_c, "readinessProbe", head_tmp), 60), "the head becomes ready")
        check(probe(head_c, "livenessProbe", head_tmp), "the head is live")
        worker, worker_tmp = start(worker_c, "worker")
        check(wait_for(lambda: probe(worker_c, "readinessProbe", worker_tmp), 60), "the worker becomes ready")

        def nodes(state):
            r = subprocess.run([RAYC, "list", "nodes", "--format=json", "--address=127.0.0.1:%d" % dash],
                               env=node_env(head_c, head_tmp), capture_output=True, text=True)
            return r.stdout.count('"%s"' % state)
        check(wait_for(lambda: nodes("ALIVE") == 2, 30), "two nodes ALIVE")
        # SIGTERM (a scaled-down pod): drained, DEAD at once, exit 0.
        t0 = time.time()
        worker.send_signal(signal.SIGTERM)
        try:
            code = worker.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        check(code == 0, "the worker exits 0 on SIGTERM (exit %s)" % code)
        # the health timeout is 10 s: DEAD well before it means drained
        check(wait_for(lambda: nodes("DEAD") == 1, 5) and time.time() - t0 < 9,
              "the worker's node is DEAD at once (drained)")
        check(not probe(worker_c, "livenessProbe", worker_tmp), "a stopped worker is not live")
        # A head whose raylet dies for good exits non-zero.
        sess = os.path.realpath(os.path.join(head_tmp, "session_latest"))
        with open(os.path.join(sess, "raylet.pid")) as f:
            os.kill(int(f.read().strip()), signal.SIGKILL)
        try:
            code = head.wait(60)
        except subprocess.TimeoutExpired:
            code = None
        check(code not in (0, None), "the head exits non-zero when its raylet dies (exit %s)" % code)
    finally:
        for p, tmp in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            subprocess.run([RAYC, "stop", "--force", "--temp-dir=" + tmp], env=env, capture_output=True)
        if failures:
            for name in ("head", "worker"):
                try:
                    print("---- %s.log\n%s" % (name, open(os.path.join(work, name + ".log")).read()[-3000:]))
                except OSError:
                    pass
        shutil.rmtree(work, ignore_errors=True)


def main():
    docs = load_docs()
    static_checks(docs)
    dockerfile_checks()
    if "--static" not in sys.argv:
        behaviour_checks(docs)
    if failures:
        print("%d deploy check(s) failed" % len(failures))
        return 1
    print("deploy checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
