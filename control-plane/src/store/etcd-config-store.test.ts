import * as net from "node:net";
import { create } from "@bufbuild/protobuf";
import { PolicySchema } from "@mysqlgw/proto";
import { isMgwError } from "../errors";
import { createEtcdConfigStore } from "./etcd-config-store";

/** A loopback port with nothing listening. */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

describe("etcd config store without etcd", () => {
  it("fails every call quickly with MGW_ERR_STORE_UNAVAILABLE naming the URL and what to check", async () => {
    const url = `http://127.0.0.1:${await deadPort()}`;
    const store = createEtcdConfigStore({ endpoints: [url], callTimeoutMs: 500 });
    try {
      for (const call of [
        () => store.getCurrent(),
        () => store.getVersion(1n),
        () => store.listDataPlanes(),
        () => store.applyIfChanged(create(PolicySchema), 0n, "test"),
      ]) {
        const t0 = Date.now();
        const err = await call().then(() => null, (e: unknown) => e);
        expect(Date.now() - t0).toBeLessThan(2000);
        expect(isMgwError(err, "MGW_ERR_STORE_UNAVAILABLE")).toBe(true);
        expect((err as Error).message).toContain(`etcd at ${url} is unreachable`);
        expect((err as Error).message).toContain("check that etcd is running");
      }
    } finally {
      await store.close();
    }
  });
});
