// Issue 2, point 9: `.ci/run` installs what the tests need, runs the README's
// test command, and ends with the line "N passed, M failed". The real script
// runs here from a scratch checkout with every outside command replaced by a
// stub on PATH (apt-get through a stub sudo, npm, npx, the servers' binaries),
// so that what is checked is the script's own logic: the README's command, the
// count (jest's tests + the two checks), the last line and the exit code.
import * as fs from "node:fs";
import * as path from "node:path";
import { runProcess, tempDir } from "../helpers";

const ROOT = path.join(__dirname, "..", "..");

interface Scenario {
  /** What the stub `npm test` prints and its exit code. */
  jestOutput: string;
  jestExit: number;
  /** Exit code of the stub generated-code check. */
  checkExit?: number;
}

async function runCi(s: Scenario) {
  const dir = tempDir("ci-run");
  const bin = path.join(dir, "stub-bin");
  const calls = path.join(dir, "calls.log");
  fs.mkdirSync(path.join(dir, ".ci"));
  fs.mkdirSync(path.join(dir, "scripts"));
  fs.mkdirSync(bin);
  fs.copyFileSync(path.join(ROOT, ".ci", "run"), path.join(dir, ".ci", "run"));
  fs.writeFileSync(path.join(dir, "scripts", "check-generated.js"), `process.exit(${s.checkExit ?? 0});\n`);
  const stub = (name: string, body: string) => fs.writeFileSync(path.join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${calls}'\n${body}\n`, { mode: 0o755 });
  // Not root: every privileged command goes through the stub sudo, which runs nothing (no package is installed, no policy-rc.d written).
  stub("id", 'if [ "$1" = "-u" ]; then echo 1000; else /usr/bin/id "$@"; fi');
  stub("sudo", "cat >/dev/null 2>&1 || true; exit 0");
  for (const b of ["mariadbd", "mariadb", "mariadb-install-db", "etcd", "etcdctl", "sysbench", "php", "curl"]) stub(b, "exit 0");
  stub("npx", "exit 0");
  fs.writeFileSync(path.join(dir, "jest-output.txt"), s.jestOutput);
  stub("npm", `if [ "$1" = "test" ]; then cat '${path.join(dir, "jest-output.txt")}'; exit ${s.jestExit}; fi\nexit 0`);
  const r = await runProcess("bash", [path.join(dir, ".ci", "run")], {
    timeoutMs: 60_000,
    env: { PATH: `${bin}:${process.env.PATH}`, TMPDIR: dir, CI: "true" },
  });
  const lines = r.stdout.trimEnd().split("\n");
  return { code: r.code, last: lines[lines.length - 1], calls: fs.readFileSync(calls, "utf8").trim().split("\n"), stderr: r.stderr };
}

const JEST_OK = "Test Suites: 3 passed, 3 total\nTests:       12 passed, 12 total\nTime: 1 s\n";
const JEST_FAILED = "Test Suites: 1 failed, 2 passed, 3 total\nTests:       1 failed, 2 skipped, 5 passed, 8 total\n";

test("runs the README's test command after installing the README's packages, and ends with \"N passed, M failed\"", async () => {
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const m = /apt-get install -y ([^&]+) && npm ci && (npm test)\n/.exec(readme);
  expect(m).not.toBeNull();
  const readmePackages = m![1]!.trim().split(/\s+/).sort();
  const r = await runCi({ jestOutput: JEST_OK, jestExit: 0 });
  expect(r.last).toBe("14 passed, 0 failed"); // 12 tests + the generated-code check + eslint
  expect(r.code).toBe(0);
  // what it installed is what the README's command installs, and it ran `npm ci` then `npm test`, as the README does
  const install = r.calls.find((c) => c.startsWith("sudo apt-get install"));
  expect(install).toBeDefined();
  const installed = install!.replace("sudo apt-get install -y -q --no-install-recommends", "").trim().split(/\s+/).sort();
  expect(installed).toEqual(readmePackages);
  const npm = r.calls.filter((c) => c.startsWith("npm "));
  expect(npm).toEqual(["npm ci --no-audit --no-fund", "npm test"]);
  expect(r.calls).toContain("npx eslint .");
});

test("a failing test, a failing check and a build that fails before jest reports are counted, and the exit is non-zero", async () => {
  let r = await runCi({ jestOutput: JEST_FAILED, jestExit: 1 });
  expect(r.last).toBe("7 passed, 1 failed");
  expect(r.code).toBe(1);
  r = await runCi({ jestOutput: JEST_OK, jestExit: 0, checkExit: 1 });
  expect(r.last).toBe("13 passed, 1 failed");
  expect(r.code).toBe(1);
  r = await runCi({ jestOutput: "error TS2322: Type 'string' is not assignable to type 'number'.\n", jestExit: 2 });
  expect(r.last).toBe("2 passed, 1 failed");
  expect(r.code).toBe(1);
});
