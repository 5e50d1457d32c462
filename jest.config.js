// Two tiers: unit tests next to the code (pure logic, fake peers on port 0) and
// integration tests under test/ against real MariaDB, etcd and clients.
/** @type {import('jest').Config} */
const tsJest = ["ts-jest", { tsconfig: { isolatedModules: true, module: "node16", moduleResolution: "node16", target: "ES2022", esModuleInterop: true } }];
module.exports = {
  // A global option in jest 29 (ignored, with a warning, inside a project): the
  // integration tests start real servers, so their default is generous.
  testTimeout: 120000,
  projects: [
    {
      displayName: "unit",
      testEnvironment: "node",
      transform: { "^.+\\.ts$": tsJest },
      testMatch: ["<rootDir>/{data-plane,control-plane,cli}/src/**/*.test.ts"],
    },
    {
      displayName: "integration",
      // node + a teardown that stops the servers a file started (after its afterAll hooks)
      testEnvironment: "<rootDir>/test/helpers/sandbox-environment.js",
      transform: { "^.+\\.ts$": tsJest },
      testMatch: ["<rootDir>/test/{integration,e2e}/**/*.test.ts"],
      slowTestThreshold: 30,
    },
  ],
};
