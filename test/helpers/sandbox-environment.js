// The jest environment of the integration tests: node's, plus a teardown that
// stops every server the test file started through @mysqlgw/sandbox. It runs
// after all of the file's afterAll hooks (so they can still close their
// clients against live servers) and even when a hook failed.
"use strict";
const { TestEnvironment } = require("jest-environment-node");

class SandboxEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    // test/helpers sees this and leaves the cleanup to teardown().
    this.global.__mysqlgwSandboxEnvironment = true;
  }

  async teardown() {
    // Set by @mysqlgw/sandbox when the test file loaded it (its registry).
    const stopAll = this.global.__mysqlgwSandboxStopAll;
    if (typeof stopAll === "function") {
      try {
        await stopAll();
      } catch (err) {
        process.stderr.write(`sandbox teardown: ${err && err.stack ? err.stack : err}\n`);
      }
    }
    await super.teardown();
  }
}

module.exports = SandboxEnvironment;
