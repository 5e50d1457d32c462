#!/usr/bin/env node
import { run } from "./program";

run(process.argv.slice(2), {
  stdout: (line) => process.stdout.write(`${line}\n`),
  stderr: (line) => process.stderr.write(`${line}\n`),
}).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`error: ${String(err)} — this is a bug in mysqlgw; please report it\n`);
    process.exitCode = 1;
  },
);
