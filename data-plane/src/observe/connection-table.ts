/**
 * The client sessions open in one worker, as the admin port's `connections`
 * table shows them: kept from session events (every listener) and statement
 * records (routed listeners).
 */
import type { Observer, SessionInfo } from "./observer";

/** One open session (plain JSON, sent over IPC). */
export interface ConnectionRow {
  id: number;
  user: string;
  client: string;
  listener: string;
  tls: boolean;
  /** "handshake" until authenticated, then "authenticated". */
  state: string;
  /** Epoch ms. */
  openedAt: number;
  statements: number;
  errors: number;
  rows: number;
  /** Epoch ms of the last statement's end; 0 before the first (and on pass-through listeners). */
  lastStatementAt: number;
}

interface Tracked {
  readonly session: SessionInfo;
  authenticated: boolean;
  statements: number;
  errors: number;
  rows: number;
  lastStatementAt: number;
}

export class ConnectionTable {
  private readonly open = new Map<number, Tracked>();

  /** @param epochOffsetMs Observers.epochOffsetMs (performance.now() → epoch ms). */
  constructor(private readonly epochOffsetMs: number) {}

  get size(): number {
    return this.open.size;
  }

  snapshot(): ConnectionRow[] {
    const out: ConnectionRow[] = [];
    for (const t of this.open.values()) {
      out.push({
        id: t.session.connectionId,
        user: t.session.user,
        client: t.session.clientAddress,
        listener: t.session.listener,
        tls: t.session.tls,
        state: t.authenticated ? "authenticated" : "handshake",
        openedAt: Math.round(t.session.openedAt + this.epochOffsetMs),
        statements: t.statements,
        errors: t.errors,
        rows: t.rows,
        lastStatementAt: t.lastStatementAt === 0 ? 0 : Math.round(t.lastStatementAt + this.epochOffsetMs),
      });
    }
    return out;
  }

  observer(): Observer {
    const track = (s: SessionInfo): Tracked => {
      let t = this.open.get(s.connectionId);
      if (t === undefined) {
        t = { session: s, authenticated: false, statements: 0, errors: 0, rows: 0, lastStatementAt: 0 };
        this.open.set(s.connectionId, t);
      }
      return t;
    };
    return {
      wants: { digest: false, sql: false },
      sessionOpened: (s) => void track(s),
      sessionAuthenticated: (s, ok) => {
        if (ok) track(s).authenticated = true;
      },
      statement: (r) => {
        const t = this.open.get(r.session.connectionId);
        if (t === undefined) return;
        t.statements++;
        if (!r.ok) t.errors++;
        t.rows += r.rows;
        t.lastStatementAt = r.endedAt;
      },
      sessionClosed: (e) => void this.open.delete(e.session.connectionId),
    };
  }
}
