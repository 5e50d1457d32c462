import { Observers, type Observer, type SessionInfo } from "./observer";

const session: SessionInfo = { connectionId: 7, listener: "l", user: "u", clientAddress: "127.0.0.1:5", openedAt: 0, tls: false };

describe("Observers", () => {
  test("inactive until one is added; wants are the union; a throwing observer does not stop the others", () => {
    const obs = new Observers();
    expect({ active: obs.active, digest: obs.wantsDigest, sql: obs.wantsSql }).toEqual({ active: false, digest: false, sql: false });
    const seen: string[] = [];
    const bad: Observer = {
      wants: { digest: true, sql: false },
      sessionOpened: () => {
        throw new Error("observer bug");
      },
    };
    const good: Observer = { wants: { digest: false, sql: true }, sessionOpened: (s) => void seen.push(`open ${s.connectionId}`), sessionClosed: (e) => void seen.push(`close ${e.reason}`) };
    obs.add(bad);
    obs.add(good);
    expect({ active: obs.active, digest: obs.wantsDigest, sql: obs.wantsSql }).toEqual({ active: true, digest: true, sql: true });
    obs.sessionOpened(session);
    obs.sessionClosed({ session, reason: "quit", closedAt: 1 });
    expect(seen).toEqual(["open 7", "close quit"]);
    obs.remove(bad);
    obs.remove(good);
    expect(obs.active).toBe(false);
  });
});
