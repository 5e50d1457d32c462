#!/usr/bin/env node
// Fails when proto/gen or the published descriptor set is stale: regenerates
// into a scratch copy and compares byte for byte. Run by CI and `npm run buf:check`.
"use strict";
const { execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const root = path.join(__dirname, "..");
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "mysqlgw-gen-"));
const buf = path.join(root, "node_modules", ".bin", "buf");
const env = { ...process.env, PATH: `${path.join(root, "node_modules", ".bin")}:${process.env.PATH}` };

function listFiles(dir, base = dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? listFiles(p, base) : [path.relative(base, p)];
  });
}

try {
  execFileSync(buf, ["lint"], { cwd: root, env, stdio: "inherit" });
  const template = fs.readFileSync(path.join(root, "buf.gen.yaml"), "utf8").replace("out: proto/gen", `out: ${path.join(scratch, "gen")}`);
  fs.writeFileSync(path.join(scratch, "buf.gen.yaml"), template);
  execFileSync(buf, ["generate", "--template", path.join(scratch, "buf.gen.yaml")], { cwd: root, env, stdio: "inherit" });
  execFileSync(buf, ["build", "-o", path.join(scratch, "mysqlgw.binpb")], { cwd: root, env, stdio: "inherit" });
  const stale = [];
  const want = listFiles(path.join(scratch, "gen"));
  const have = listFiles(path.join(root, "proto", "gen"));
  for (const f of new Set([...want, ...have])) {
    const a = path.join(scratch, "gen", f);
    const b = path.join(root, "proto", "gen", f);
    if (!fs.existsSync(a) || !fs.existsSync(b) || !fs.readFileSync(a).equals(fs.readFileSync(b))) stale.push(`proto/gen/${f}`);
  }
  const desc = path.join(root, "proto", "descriptor", "mysqlgw.binpb");
  if (!fs.existsSync(desc) || !fs.readFileSync(desc).equals(fs.readFileSync(path.join(scratch, "mysqlgw.binpb")))) stale.push("proto/descriptor/mysqlgw.binpb");
  if (stale.length > 0) {
    console.error(`generated code is stale: ${stale.join(", ")}; run \`npm run buf:gen\` and commit the result`);
    process.exit(1);
  }
  console.log("buf lint clean; generated code and descriptor set are up to date");
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
