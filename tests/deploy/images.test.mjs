// Container build files (deploy/images): a static check of every Containerfile, that they agree
// with the Helm charts (image names, entrypoint paths, users, ports) and with
// tools/install-deps.sh (build packages), and that collect-rootfs.sh gathers a complete library
// closure. Also: docs/install.md's values files and AsyncActor are valid. Building the images needs buildah and minutes: deploy/images/build-local.sh, not here.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, readdirSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import os from "node:os";
import path from "node:path";
import { repoRoot } from "./lib/tools.mjs";
import { template } from "./lib/helm.mjs";
import { parseDocs, validateObject, describe } from "./lib/k8s.mjs";

const imagesDir = path.join(repoRoot, "deploy/images");
const read = (p) => readFileSync(path.join(repoRoot, p), "utf8");

// Parses a Containerfile into stages of instructions {op, args, line}; comments dropped,
// continuation lines joined, `ARG` before the first FROM kept as global args.
export function parseContainerfile(text) {
  const instrs = [];
  let buf = "", start = 0;
  text.split("\n").forEach((raw, i) => {
    const line = raw.trim();
    if (buf === "" && (line === "" || line.startsWith("#"))) return;
    if (buf !== "" && line.startsWith("#")) return; // comment inside a continuation
    if (buf === "") start = i + 1;
    if (line.endsWith("\\")) { buf += line.slice(0, -1) + " "; return; }
    buf += line;
    const m = /^([A-Za-z]+)\s+([\s\S]*)$/.exec(buf);
    assert.ok(m, `line ${start}: not an instruction: ${buf}`);
    instrs.push({ op: m[1].toUpperCase(), args: m[2].trim(), line: start });
    buf = "";
  });
  assert.equal(buf, "", "dangling line continuation at end of file");
  const globalArgs = {}, stages = [];
  for (const ins of instrs) {
    if (ins.op === "FROM") {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      assert.ok(m, `line ${ins.line}: FROM ${ins.args}`);
      stages.push({ from: m[1], name: m[2] || null, instrs: [], line: ins.line });
    } else if (stages.length === 0) {
      assert.equal(ins.op, "ARG", `line ${ins.line}: only ARG may precede the first FROM`);
      const [k, v] = ins.args.split("=");
      globalArgs[k] = v ?? "";
    } else {
      stages.at(-1).instrs.push(ins);
    }
  }
  return { globalArgs, stages };
}

const resolveFrom = (from, args) => from.replace(/\$\{(\w+)\}|\$(\w+)/g, (_, a, b) => args[a || b] ?? "");
const one = (stage, op) => stage.instrs.filter((i) => i.op === op);
const last = (stage, op) => one(stage, op).at(-1);
const execForm = (args) => { const v = JSON.parse(args); assert.ok(Array.isArray(v) && v.every((s) => typeof s === "string")); return v; };

// Every add_executable() target of the CMake project.
function cmakeTargets() {
  const out = new Set();
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "build" || e.name.startsWith(".") || e.name === "node_modules") continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name === "CMakeLists.txt") {
        for (const m of readFileSync(p, "utf8").matchAll(/add_executable\(\s*([A-Za-z0-9_.+-]+)/g)) out.add(m[1]);
      }
    }
  };
  walk(repoRoot);
  return out;
}

// Packages of tools/install-deps.sh's PKGS=( ... ) array.
function installDepsPackages() {
  const m = /PKGS=\(([\s\S]*?)\)/.exec(read("tools/install-deps.sh"));
  assert.ok(m, "tools/install-deps.sh: no PKGS=( ... )");
  return new Set(m[1].split(/\s+/).filter(Boolean));
}

// Binaries whose code is not written yet (issue 9): their Containerfile must be right for a CMake
// executable target of that name, but the target may be missing until that work lands.
const pendingTargets = new Set(["asya-operator", "asya-gateway"]);
// Build-stage packages that stand for an install-deps.sh package (build-essential minus make/dpkg-dev),
// or that only the image needs (the CA bundle it ships).
const standIns = { "g++": "build-essential", "ca-certificates": null };
// Library packages of install-deps.sh that no image build needs.
const notForImages = new Set(["libbenchmark-dev"]);

// The component images: file -> {target, chart expectations}.
const components = {
  "sidecar.Containerfile": { target: "asya-sidecar", shell: false },
  "crew.Containerfile": { target: "asya-crew", shell: true },
  "operator.Containerfile": { target: "asya-operator", shell: false },
  "gateway.Containerfile": { target: "asya-gateway", shell: false },
  "cli.Containerfile": { target: "asya", shell: false },
};

const parsed = {};
for (const f of readdirSync(imagesDir).filter((f) => f.endsWith(".Containerfile")).sort()) {
  parsed[f] = parseContainerfile(readFileSync(path.join(imagesDir, f), "utf8"));
}
const handlerFile = "deploy/images/example-handler/Containerfile";
parsed[handlerFile] = parseContainerfile(read(handlerFile));

test("every component has a Containerfile, and every Containerfile is known", () => {
  const files = Object.keys(parsed).filter((f) => f.endsWith(".Containerfile"));
  assert.deepEqual(files.sort(), [...Object.keys(components), "python-base.Containerfile"].sort());
});

for (const [file, { globalArgs, stages }] of Object.entries(parsed)) {
  test(`${file}: well-formed, pinned bases, non-root numeric USER, exec-form ENTRYPOINT/CMD, no remote ADD`, () => {
    assert.ok(stages.length >= 1);
    const names = new Set();
    for (const s of stages) {
      const base = resolveFrom(s.from, globalArgs);
      assert.ok(base, `line ${s.line}: FROM ${s.from} resolves to nothing (ARG default missing)`);
      if (base !== "scratch" && !names.has(base) && !file.includes("example-handler")) {
        assert.match(base, /^docker\.io\/library\/(debian:12|python:3\.\d+-slim-bookworm)$/, `line ${s.line}: base ${base}`);
      }
      if (s.name) names.add(s.name);
      for (const ins of s.instrs) {
        assert.notEqual(ins.op, "ADD", `line ${ins.line}: use COPY (ADD fetches URLs and unpacks archives)`);
        assert.notEqual(ins.op, "MAINTAINER", `line ${ins.line}: use a label`);
        if (ins.op === "ENTRYPOINT" || ins.op === "CMD") execForm(ins.args);
        if (ins.op === "COPY") {
          const from = /--from=(\S+)/.exec(ins.args);
          if (from) assert.ok(names.has(from[1]), `line ${ins.line}: COPY --from=${from[1]}: no such earlier stage`);
        }
        if (ins.op === "RUN" && /apt-get install/.test(ins.args)) {
          assert.match(ins.args, /--no-install-recommends/, `line ${ins.line}`);
          assert.match(ins.args, /rm -rf \/var\/lib\/apt\/lists/, `line ${ins.line}: apt lists left in the layer`);
        }
      }
    }
    const final = stages.at(-1);
    const user = last(final, "USER");
    assert.ok(user, "final stage has no USER");
    assert.match(user.args, /^[1-9]\d*:[1-9]\d*$/, `USER ${user.args}: want a numeric non-root uid:gid`);
    for (const s of stages.slice(0, -1)) {
      assert.equal(one(s, "ENTRYPOINT").length + one(s, "USER").length, 0, `stage ${s.name}: config in a build stage`);
    }
  });
}

for (const [file, { target, shell }] of Object.entries(components)) {
  test(`${file}: builds CMake target ${target} and runs it from the scratch runtime stage`, () => {
    const { stages } = parsed[file];
    assert.equal(stages.length, 2, "a build stage and a runtime stage");
    const [build, run] = stages;
    assert.equal(build.name, "build");
    assert.equal(run.from, "scratch");
    const script = one(build, "RUN").map((r) => r.args).join("\n");
    assert.match(script, new RegExp(`cmake --build /build --target ${target}( |$)`));
    assert.match(script, new RegExp(`collect-rootfs\\.sh /rootfs /build/bin/${target}( |$)`));
    assert.equal(/EXTRA=\/bin\/dash:\/bin\/sh/.test(script), shell, shell ? "needs /bin/sh for exec probes" : "no shell");
    const targets = cmakeTargets();
    if (!pendingTargets.has(target)) assert.ok(targets.has(target), `${target} is not an add_executable target`);
    assert.deepEqual(one(run, "COPY").map((c) => c.args), ["--from=build /rootfs/ /"]);
    assert.deepEqual(execForm(last(run, "ENTRYPOINT").args), [`/usr/local/bin/${target}`]);
    const labels = one(run, "LABEL").map((l) => l.args).join(" ");
    for (const key of ["title", "description", "version", "revision", "vendor"]) {
      assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.${key}=`), `label ${key}`);
    }
    assert.match(labels, new RegExp(`org\\.opencontainers\\.image\\.title="${target}"`));
  });

  test(`${file}: build packages are tools/install-deps.sh's libraries`, () => {
    const deps = installDepsPackages();
    const { stages } = parsed[file];
    const runs = one(stages[0], "RUN").map((r) => r.args).join(" ");
    const m = /apt-get install -y -q --no-install-recommends ([^&]*)&&/.exec(runs);
    assert.ok(m, "no apt-get install in the build stage");
    const pkgs = m[1].split(/\s+/).filter(Boolean);
    const text = readFileSync(path.join(imagesDir, file), "utf8");
    const pending = new Set((/# Not yet in tools\/install-deps\.sh: ([^(]*)/.exec(text)?.[1] || "").split(/[\s,]+/).filter(Boolean));
    for (const p of pkgs) {
      const standIn = p in standIns && (standIns[p] === null || deps.has(standIns[p]));
      assert.ok(deps.has(p) || pending.has(p) || standIn, `${p}: not in tools/install-deps.sh`);
    }
    for (const d of [...deps].filter((d) => d.startsWith("lib") && d.endsWith("-dev") && !notForImages.has(d))) {
      assert.ok(pkgs.includes(d), `${d} of tools/install-deps.sh is missing from the build stage`);
    }
  });
}

test("python-base and the example handler image: conventions the operator relies on", () => {
  const base = parsed["python-base.Containerfile"].stages;
  assert.equal(base.length, 1);
  const envs = one(base[0], "ENV").map((e) => e.args).join(" ");
  assert.match(envs, /PYTHONPATH=\/app/);
  assert.equal(last(base[0], "WORKDIR").args, "/app");
  assert.deepEqual(execForm(last(base[0], "CMD").args), ["python3", "/opt/asya/asya_runtime.py"]);
  assert.equal(one(base[0], "ENTRYPOINT").length, 0, "an ENTRYPOINT would wrap the operator's command");
  const handler = parsed[handlerFile];
  assert.equal(handler.stages[0].from, "${ASYA_PYTHON_BASE}");
  assert.match(handler.globalArgs.ASYA_PYTHON_BASE, /^asya-python-base:/);
  const henv = one(handler.stages[0], "ENV").map((e) => e.args).join(" ");
  const h = /ASYA_HANDLER=(\S+)/.exec(henv)[1];
  const [mod] = h.split(".");
  assert.ok(existsSync(path.join(repoRoot, "deploy/images/example-handler", `${mod}.py`)), `${mod}.py`);
  assert.ok(one(handler.stages[0], "COPY").some((c) => c.args === `${mod}.py /app/`));
});

test("the charts run exactly these images, paths, users and ports", () => {
  const byTarget = Object.fromEntries(Object.entries(components).map(([f, c]) => [c.target, parsed[f].stages.at(-1)]));
  const uidOf = (t) => Number(last(byTarget[t], "USER").args.split(":")[0]);
  const exposed = (t) => one(byTarget[t], "EXPOSE").flatMap((e) => e.args.split(/\s+/)).map(Number);
  const repo = (image) => image.replace(/:[^:/]+$/, "");

  const op = template("asya-operator").find((o) => o.kind === "Deployment");
  const opPod = op.spec.template.spec;
  assert.equal(repo(opPod.containers[0].image), "asya-operator");
  assert.equal(opPod.securityContext.runAsUser, uidOf("asya-operator"));
  for (const p of opPod.containers[0].ports) assert.ok(exposed("asya-operator").includes(p.containerPort), `operator port ${p.containerPort}`);
  const sidecarImage = opPod.containers[0].env.find((e) => e.name === "ASYA_SIDECAR_IMAGE").value;
  assert.equal(repo(sidecarImage), "asya-sidecar");
  assert.ok(!opPod.containers[0].command, "the operator image's ENTRYPOINT is used");

  const crew = template("asya-crew", ["--set", "transport=rabbitmq"]).filter((o) => o.kind === "AsyncActor");
  assert.deepEqual(crew.map((a) => a.metadata.name).sort(), ["error-end", "happy-end"]);
  for (const a of crew) {
    const c = a.spec.workload.template.spec.containers.find((x) => x.name === "asya-runtime");
    assert.equal(repo(c.image), "asya-crew");
    assert.deepEqual([a.spec.workload.pythonExecutable], execForm(last(byTarget["asya-crew"], "ENTRYPOINT").args));
  }

  const gw = template("asya-gateway").find((o) => o.kind === "Deployment");
  const gwPod = gw.spec.template.spec;
  assert.equal(repo(gwPod.containers[0].image), "asya-gateway");
  assert.equal(gwPod.securityContext.runAsUser, uidOf("asya-gateway"));
  assert.ok(exposed("asya-gateway").includes(gwPod.containers[0].ports[0].containerPort));
});

test("collect-rootfs.sh gathers the complete library closure of a binary", (t) => {
  const bin = path.join(process.env.ASYA_BIN_DIR || path.join(repoRoot, "build/bin"), "asya-crew");
  assert.ok(existsSync(bin), `${bin} missing: build the project first (or set ASYA_BIN_DIR)`);
  const dest = mkdtempSync(path.join(os.tmpdir(), "asya-rootfs-"));
  t.after(() => rmSync(dest, { recursive: true, force: true }));
  const r = spawnSync("sh", [path.join(imagesDir, "collect-rootfs.sh"), dest, bin], {
    encoding: "utf8", env: { ...process.env, EXTRA: "/bin/dash:/bin/sh" },
  });
  assert.equal(r.status, 0, r.stderr);
  for (const f of ["usr/local/bin/asya-crew", "bin/sh", "etc/passwd", "etc/group", "etc/nsswitch.conf"]) {
    assert.ok(existsSync(path.join(dest, f)), f);
  }
  assert.match(readFileSync(path.join(dest, "etc/passwd"), "utf8"), /^nonroot:x:65532:65532:/m);
  // Resolve the binary's libraries with the collected loader against the collected tree only: every
  // one must come from inside it.
  const loader = "/lib64/ld-linux-x86-64.so.2";
  const libdirs = ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"].map((d) => path.join(dest, d)).join(":");
  const list = spawnSync(path.join(dest, loader), ["--inhibit-cache", "--library-path", libdirs, "--list", path.join(dest, "usr/local/bin/asya-crew")], { encoding: "utf8" });
  assert.equal(list.status, 0, list.stderr);
  const resolved = [...list.stdout.matchAll(/=> (\/\S+)/g)].map((m) => m[1]);
  assert.ok(resolved.length >= 3, list.stdout);
  for (const lib of resolved) assert.ok(lib.startsWith(dest + "/"), `${lib} resolved outside the collected tree`);
  // The collected tree runs the binary: with no configuration it names what is missing.
  const run = spawnSync(path.join(dest, loader), ["--inhibit-cache", "--library-path", libdirs, path.join(dest, "usr/local/bin/asya-crew")], { encoding: "utf8", env: {} });
  assert.equal(run.status, 1);
  assert.match(run.stderr, /set ASYA_S3_BUCKET .* and\/or ASYA_CREW_DIR/);
  // A binary with an unresolvable library is refused, not silently half-copied.
  const bad = spawnSync("sh", [path.join(imagesDir, "collect-rootfs.sh"), path.join(dest, "x"), "/nonexistent/bin"], { encoding: "utf8" });
  assert.notEqual(bad.status, 0);
});

test("docs/install.md: its values files render with the charts, its AsyncActor passes the CRD", (t) => {
  const md = read("docs/install.md");
  const dir = mkdtempSync(path.join(os.tmpdir(), "asya-install-doc-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const blocks = [...md.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]);
  const valuesFor = { "asya-operator": /^transports:/m, "asya-actor": /^actors:/m };
  for (const [chart, re] of Object.entries(valuesFor)) {
    const block = blocks.find((b) => re.test(b));
    assert.ok(block, `no values block for ${chart}`);
    const f = path.join(dir, `${chart}.yaml`);
    writeFileSync(f, block);
    const objs = template(chart, ["-f", f]);
    for (const o of objs) assert.deepEqual(validateObject(o), [], `${chart}: ${describe(o)}`);
    if (chart === "asya-actor") assert.equal(objs.filter((o) => o.kind === "AsyncActor").length, 1);
  }
  const heredocs = [...md.matchAll(/<<'EOF'\n([\s\S]*?)\nEOF/g)].flatMap((m) => parseDocs(m[1]));
  const actors = heredocs.filter((o) => o.kind === "AsyncActor");
  assert.equal(actors.length, 1);
  assert.deepEqual(validateObject(actors[0]), []);
});
