/**
 * Where a command's response ends in the backend's byte stream, and what its
 * last OK/EOF said (status flags: in transaction, autocommit, cursor), read
 * from the bytes as they pass, without copying packets or holding them.
 *
 * The routed session engine forwards every chunk as received and needs to
 * know only at which byte the response is complete, so that the backend
 * connection can go back to its pool or the next statement can go elsewhere.
 *
 * Response shapes (MySQL client/server protocol, CLIENT_PROTOCOL_41):
 * - result sets (COM_QUERY, COM_STMT_EXECUTE, COM_STMT_BULK_EXECUTE): each
 *   result is an OK, an ERR, a LOCAL INFILE request, or column count, column
 *   definitions, [EOF unless CLIENT_DEPRECATE_EOF], rows, then EOF (or OK with
 *   a 0xFE header under CLIENT_DEPRECATE_EOF) or ERR; SERVER_MORE_RESULTS_EXISTS
 *   in the final status says another result follows. A cursor (statement
 *   executed with CURSOR_TYPE_READ_ONLY) ends after the metadata with
 *   SERVER_STATUS_CURSOR_EXISTS;
 * - COM_STMT_PREPARE: ERR, or OK_prepare then parameter and column definitions,
 *   each group followed by EOF unless CLIENT_DEPRECATE_EOF;
 * - COM_FIELD_LIST: column definitions then EOF/OK, or ERR;
 * - COM_STMT_FETCH: rows then EOF/OK, or ERR;
 * - one packet (COM_PING, COM_INIT_DB, COM_STMT_RESET, COM_SET_OPTION,
 *   COM_RESET_CONNECTION, COM_STATISTICS's text);
 * - none (COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA).
 *
 * A packet of 0xFFFFFF payload bytes is continued by the next one, which is
 * never read as a packet start. Pure; never throws on any bytes (garbage ends
 * in some state the caller can time out of).
 */
import { ResponseHeader, ServerStatus } from "./constants";

/** What kind of response a command gets. */
export const enum ResponseShape {
  None = 0,
  Single = 1,
  ResultSets = 2,
  Prepare = 3,
  FieldList = 4,
  Rows = 5,
}

const enum Phase {
  Idle = 0,
  /** Start of a result: OK, ERR, LOCAL INFILE request or a column count. */
  First = 1,
  ColumnDefs = 2,
  /** The EOF after column definitions (no CLIENT_DEPRECATE_EOF). */
  ColumnsEof = 3,
  Rows = 4,
  PrepareFirst = 5,
  /** A known number of packets left (prepare's definitions). */
  Countdown = 6,
  FieldList = 7,
  Single = 8,
  /** The client uploads a LOCAL INFILE; nothing from the server is expected. */
  Infile = 9,
}

/** How many payload bytes of a packet are looked at (OK: header, two lenenc ints, status). */
const PEEK = 24;

/** One packet's payload length that says the logical packet continues. */
const CONTINUED = 0xffffff;

export class ResponseTracker {
  /** CLIENT_DEPRECATE_EOF on the backend connection. */
  deprecateEof: boolean;
  private phase = Phase.Idle;
  /** Header bytes of the current packet gathered so far (0..4). */
  private headerFill = 0;
  private readonly header = new Uint8Array(4);
  /** Payload bytes of the current packet not yet passed. */
  private remaining = 0;
  private packetLength = 0;
  /** The current packet continues the previous one (not a packet start). */
  private continuation = false;
  /** True while the current packet's first bytes are being gathered. */
  private peeking = false;
  private readonly peek = new Uint8Array(PEEK);
  private peekFill = 0;
  private peekWant = 0;
  private columnsLeft = 0;
  private countdown = 0;

  /** Status flags of the last OK/EOF of the response; valid once done when `statusKnown`. */
  statusFlags = 0;
  /** An OK or EOF packet (which carry the server's status) was seen in this response. */
  statusKnown = false;
  /** The response (or its last result) was an ERR packet. */
  error = false;
  /** The error number of that ERR packet. */
  errno = 0;
  /** The server asked for a LOCAL INFILE upload: the response is paused (see `infileSent`). */
  localInfile = false;
  /** COM_STMT_PREPARE's OK: statement id, columns, parameters. */
  stmtId = 0;
  numColumns = 0;
  numParams = 0;
  /** Warnings of the last OK/EOF. */
  warnings = 0;
  /** Results seen in this response (one per OK/ERR/result set). */
  results = 0;
  /** Rows of the response's result sets. */
  rows = 0;

  constructor(deprecateEof: boolean) {
    this.deprecateEof = deprecateEof;
  }

  /** True while a response is expected or under way. */
  get busy(): boolean {
    return this.phase !== Phase.Idle;
  }

  /** A command was sent; its response (of `shape`) comes next. Returns false for no response at all. */
  begin(shape: ResponseShape): boolean {
    this.headerFill = 0;
    this.remaining = 0;
    this.continuation = false;
    this.peeking = false;
    this.finishing = false;
    this.statusFlags = 0;
    this.statusKnown = false;
    this.error = false;
    this.errno = 0;
    this.localInfile = false;
    this.warnings = 0;
    this.results = 0;
    this.rows = 0;
    switch (shape) {
      case ResponseShape.None:
        this.phase = Phase.Idle;
        return false;
      case ResponseShape.Single:
        this.phase = Phase.Single;
        break;
      case ResponseShape.ResultSets:
        this.phase = Phase.First;
        break;
      case ResponseShape.Prepare:
        this.phase = Phase.PrepareFirst;
        break;
      case ResponseShape.FieldList:
        this.phase = Phase.FieldList;
        break;
      case ResponseShape.Rows:
        this.phase = Phase.Rows;
        break;
    }
    return true;
  }

  /** The client finished its LOCAL INFILE upload (the empty packet): the server's OK/ERR comes next. */
  infileSent(): void {
    this.localInfile = false;
    this.phase = Phase.First;
    this.headerFill = 0;
    this.remaining = 0;
    this.continuation = false;
    this.finishing = false;
  }

  /** Forget the response under way (the connection is being dropped). */
  abandon(): void {
    this.phase = Phase.Idle;
  }

  /**
   * Reads `chunk[from, end)`. Returns the offset just past the last byte of
   * the response when it ends in this chunk (the tracker is then idle, or
   * paused for a LOCAL INFILE upload), else -1 (all of it belongs to the
   * response). Bytes past the end are not read.
   */
  push(chunk: Uint8Array, from = 0, end = chunk.length): number {
    let pos = from;
    for (;;) {
      if (this.remaining > 0 && !this.peeking) {
        // payload bytes of the current packet pass unread
        const n = Math.min(this.remaining, end - pos);
        this.remaining -= n;
        pos += n;
        if (this.remaining > 0) return -1;
      }
      if (this.finishing) {
        // the last packet of the response has passed
        this.finishing = false;
        return pos;
      }
      if (this.phase === Phase.Idle || this.phase === Phase.Infile) return pos;
      if (pos >= end) return -1;
      if (this.peeking) {
        // the first bytes of a packet split across chunks
        const n = Math.min(this.peekWant - this.peekFill, end - pos);
        for (let i = 0; i < n; i++) this.peek[this.peekFill + i] = chunk[pos + i];
        this.peekFill += n;
        pos += n;
        this.remaining -= n;
        if (this.peekFill < this.peekWant) return -1;
        this.peeking = false;
        this.examine(this.peek, 0, this.peekFill);
        if (this.decided()) this.finishing = true;
        continue;
      }
      // a packet header
      let len: number;
      if (this.headerFill === 0 && end - pos >= 4) {
        len = chunk[pos] | (chunk[pos + 1] << 8) | (chunk[pos + 2] << 16);
        pos += 4;
      } else {
        while (this.headerFill < 4 && pos < end) this.header[this.headerFill++] = chunk[pos++];
        if (this.headerFill < 4) return -1;
        this.headerFill = 0;
        len = this.header[0] | (this.header[1] << 8) | (this.header[2] << 16);
      }
      const tail = this.continuation;
      this.continuation = len === CONTINUED;
      this.packetLength = len;
      this.remaining = len;
      if (tail) continue; // the rest of a long logical packet
      const want = len < PEEK ? len : PEEK;
      if (end - pos >= want) {
        this.examine(chunk, pos, want);
        if (this.decided()) this.finishing = true;
        continue;
      }
      this.peeking = true;
      this.peekFill = 0;
      this.peekWant = want;
    }
  }

  /** The response is complete (or paused for a LOCAL INFILE upload). */
  private decided(): boolean {
    return this.phase === Phase.Idle || this.phase === Phase.Infile;
  }

  /** The deciding packet of the response was read; its payload still passes. */
  private finishing = false;

  /** Looks at the first `n` payload bytes of a packet (buf[at, at+n)) and moves the state machine. */
  private examine(buf: Uint8Array, at: number, n: number): void {
    const len = this.packetLength;
    const first = n > 0 ? buf[at] : -1;
    switch (this.phase) {
      case Phase.First:
        this.results++;
        if (first === ResponseHeader.Ok) return this.onOk(buf, at, n, Phase.First);
        if (first === ResponseHeader.Err) return this.onErr(buf, at, n);
        if (first === ResponseHeader.LocalInfile) {
          this.localInfile = true;
          this.phase = Phase.Infile;
          return;
        }
        this.columnsLeft = readLenEnc(buf, at, n);
        this.phase = this.columnsLeft > 0 ? Phase.ColumnDefs : this.afterColumns();
        return;
      case Phase.ColumnDefs:
        if (--this.columnsLeft <= 0) this.phase = this.afterColumns();
        return;
      case Phase.ColumnsEof:
        if (first === ResponseHeader.Err) return this.onErr(buf, at, n);
        this.readEof(buf, at, n);
        this.phase = (this.statusFlags & ServerStatus.CursorExists) !== 0 ? Phase.Idle : Phase.Rows;
        return;
      case Phase.Rows:
        if (first === ResponseHeader.Err) return this.onErr(buf, at, n);
        if (first === ResponseHeader.Eof && len < (this.deprecateEof ? CONTINUED : 9)) {
          if (this.deprecateEof) this.readOkStatus(buf, at, n);
          else this.readEof(buf, at, n);
          const more = (this.statusFlags & ServerStatus.MoreResultsExist) !== 0 && (this.statusFlags & ServerStatus.CursorExists) === 0;
          this.phase = more ? Phase.First : Phase.Idle;
          return;
        }
        this.rows++;
        return;
      case Phase.PrepareFirst: {
        this.results++;
        if (first !== ResponseHeader.Ok) return this.onErr(buf, at, n);
        this.stmtId = n >= 5 ? (buf[at + 1] | (buf[at + 2] << 8) | (buf[at + 3] << 16) | (buf[at + 4] << 24)) >>> 0 : 0;
        this.numColumns = n >= 7 ? buf[at + 5] | (buf[at + 6] << 8) : 0;
        this.numParams = n >= 9 ? buf[at + 7] | (buf[at + 8] << 8) : 0;
        this.warnings = n >= 12 ? buf[at + 10] | (buf[at + 11] << 8) : 0;
        const eofs = this.deprecateEof ? 0 : (this.numParams > 0 ? 1 : 0) + (this.numColumns > 0 ? 1 : 0);
        this.countdown = this.numParams + this.numColumns + eofs;
        this.phase = this.countdown > 0 ? Phase.Countdown : Phase.Idle;
        return;
      }
      case Phase.Countdown:
        if (--this.countdown <= 0) this.phase = Phase.Idle;
        return;
      case Phase.FieldList:
        if (first === ResponseHeader.Err) return this.onErr(buf, at, n);
        if (first === ResponseHeader.Eof && len < (this.deprecateEof ? CONTINUED : 9)) {
          if (this.deprecateEof) this.readOkStatus(buf, at, n);
          else this.readEof(buf, at, n);
          this.phase = Phase.Idle;
        }
        return;
      case Phase.Single:
        this.results++;
        if (first === ResponseHeader.Ok) this.readOkStatus(buf, at, n);
        else if (first === ResponseHeader.Err) this.readErr(buf, at, n);
        else if (first === ResponseHeader.Eof && len < 9) this.readEof(buf, at, n);
        this.phase = Phase.Idle;
        return;
      default:
        return;
    }
  }

  private afterColumns(): Phase {
    return this.deprecateEof ? Phase.Rows : Phase.ColumnsEof;
  }

  private onOk(buf: Uint8Array, at: number, n: number, next: Phase): void {
    this.readOkStatus(buf, at, n);
    this.phase = (this.statusFlags & ServerStatus.MoreResultsExist) !== 0 ? next : Phase.Idle;
  }

  private onErr(buf: Uint8Array, at: number, n: number): void {
    this.readErr(buf, at, n);
    this.phase = Phase.Idle;
  }

  private readErr(buf: Uint8Array, at: number, n: number): void {
    this.error = true;
    this.errno = n >= 3 ? buf[at + 1] | (buf[at + 2] << 8) : 0;
    // an ERR ends the response; the server's status is not in it (keep the last known flags)
  }

  /** EOF_Packet: 0xFE, warnings (2), status (2). */
  private readEof(buf: Uint8Array, at: number, n: number): void {
    this.error = false;
    this.statusKnown = true;
    if (n >= 5) {
      this.warnings = buf[at + 1] | (buf[at + 2] << 8);
      this.statusFlags = buf[at + 3] | (buf[at + 4] << 8);
    }
  }

  /** OK_Packet (0x00 or 0xFE header): affected rows, last insert id (lenenc), status (2), warnings (2). */
  private readOkStatus(buf: Uint8Array, at: number, n: number): void {
    this.error = false;
    this.statusKnown = true;
    let p = at + 1;
    const stop = at + n;
    p += lenEncSize(buf, p, stop);
    p += lenEncSize(buf, p, stop);
    if (p + 4 <= stop) {
      this.statusFlags = buf[p] | (buf[p + 1] << 8);
      this.warnings = buf[p + 2] | (buf[p + 3] << 8);
    }
  }
}

/** Bytes of the length-encoded integer at buf[p] (1 when out of range). */
function lenEncSize(buf: Uint8Array, p: number, stop: number): number {
  if (p >= stop) return 1;
  const b = buf[p];
  if (b < 0xfb) return 1;
  if (b === 0xfc) return 3;
  if (b === 0xfd) return 4;
  if (b === 0xfe) return 9;
  return 1;
}

/** A length-encoded integer (column count); values past 2^32 are clamped (never seen for counts). */
function readLenEnc(buf: Uint8Array, p: number, n: number): number {
  if (n < 1) return 0;
  const b = buf[p];
  if (b < 0xfb) return b;
  if (b === 0xfc) return n >= 3 ? buf[p + 1] | (buf[p + 2] << 8) : 0;
  if (b === 0xfd) return n >= 4 ? buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) : 0;
  if (b === 0xfe) return n >= 5 ? (buf[p + 1] | (buf[p + 2] << 8) | (buf[p + 3] << 16) | (buf[p + 4] << 24)) >>> 0 : 0;
  return 0;
}
