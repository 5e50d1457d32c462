import * as net from "node:net";
import { MgwError } from "./errors";

/** Ports this process already handed out; never handed out twice. */
const handedOut = new Set<number>();

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the OS picks it (listen on
 * port 0), we read it and close. Another process may take it before the server
 * binds it, so every start in this package retries on EADDRINUSE.
 */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await listenAndClose(0);
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new MgwError("MGW_ERR_SANDBOX_NO_FREE_PORT", "the OS kept handing out ports this process already uses");
}

/** True if 127.0.0.1:`port` can be bound right now. */
export async function isPortFree(port: number): Promise<boolean> {
  try {
    await listenAndClose(port);
    return true;
  } catch {
    return false;
  }
}

function listenAndClose(port: number): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => {
      const address = server.address() as net.AddressInfo;
      server.close(() => resolve(address.port));
    });
  });
}
