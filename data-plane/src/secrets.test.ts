import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { resolveSecretRef } from "./secrets";

describe("resolveSecretRef", () => {
  it("resolves empty, env: and file: refs", async () => {
    const dir = mkdtempSync(join(tmpdir(), "mgw-secret-"));
    writeFileSync(join(dir, "pw"), "s3cret\n");
    writeFileSync(join(dir, "crlf"), "a b\r\n");
    writeFileSync(join(dir, "two"), "x\n\n");
    expect(await resolveSecretRef("")).toBe("");
    expect(await resolveSecretRef("env:PW", { PW: "from-env" })).toBe("from-env");
    expect(await resolveSecretRef("env:PW", { PW: "" })).toBe("");
    expect(await resolveSecretRef(`file:${join(dir, "pw")}`)).toBe("s3cret");
    expect(await resolveSecretRef(`file:${join(dir, "crlf")}`)).toBe("a b");
    expect(await resolveSecretRef(`file:${join(dir, "two")}`)).toBe("x\n"); // only one newline removed
    rmSync(dir, { recursive: true, force: true });
  });

  it("names the ref and what to do when it cannot be resolved", async () => {
    await expect(resolveSecretRef("env:NOPE_NOT_SET", {})).rejects.toMatchObject({
      code: "MGW_ERR_SECRET_UNRESOLVABLE",
      message: expect.stringContaining("NOPE_NOT_SET is not set"),
    });
    await expect(resolveSecretRef("file:/nonexistent/mgw")).rejects.toMatchObject({ message: expect.stringContaining("ENOENT") });
    await expect(resolveSecretRef("vault:x")).rejects.toMatchObject({ message: expect.stringContaining('use "env:NAME" or "file:/path"') });
  });
});
