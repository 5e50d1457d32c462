/**
 * Wire constants of the MySQL/MariaDB client/server protocol.
 * Capability values are unsigned 32-bit; combine them with `(a | b) >>> 0`
 * because bit 31 makes JS bitwise results negative.
 */

/** Lower 32 bits of the capability set (CLIENT_*). */
export const enum Capability {
  LongPassword = 0x00000001, // CLIENT_LONG_PASSWORD; MariaDB calls it CLIENT_MYSQL (set = "not extended")
  FoundRows = 0x00000002, // CLIENT_FOUND_ROWS: affected rows = matched rows
  LongFlag = 0x00000004, // CLIENT_LONG_FLAG
  ConnectWithDb = 0x00000008, // CLIENT_CONNECT_WITH_DB
  NoSchema = 0x00000010, // CLIENT_NO_SCHEMA
  Compress = 0x00000020, // CLIENT_COMPRESS
  Odbc = 0x00000040, // CLIENT_ODBC
  LocalFiles = 0x00000080, // CLIENT_LOCAL_FILES: LOAD DATA LOCAL
  IgnoreSpace = 0x00000100, // CLIENT_IGNORE_SPACE
  Protocol41 = 0x00000200, // CLIENT_PROTOCOL_41
  Interactive = 0x00000400, // CLIENT_INTERACTIVE
  Ssl = 0x00000800, // CLIENT_SSL
  IgnoreSigpipe = 0x00001000, // CLIENT_IGNORE_SIGPIPE
  Transactions = 0x00002000, // CLIENT_TRANSACTIONS
  Reserved = 0x00004000, // CLIENT_RESERVED
  SecureConnection = 0x00008000, // CLIENT_SECURE_CONNECTION (4.1 auth)
  MultiStatements = 0x00010000, // CLIENT_MULTI_STATEMENTS
  MultiResults = 0x00020000, // CLIENT_MULTI_RESULTS
  PsMultiResults = 0x00040000, // CLIENT_PS_MULTI_RESULTS
  PluginAuth = 0x00080000, // CLIENT_PLUGIN_AUTH
  ConnectAttrs = 0x00100000, // CLIENT_CONNECT_ATTRS
  PluginAuthLenencClientData = 0x00200000, // CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA
  CanHandleExpiredPasswords = 0x00400000, // CLIENT_CAN_HANDLE_EXPIRED_PASSWORDS
  SessionTrack = 0x00800000, // CLIENT_SESSION_TRACK
  DeprecateEof = 0x01000000, // CLIENT_DEPRECATE_EOF: OK instead of EOF after rows
  OptionalResultsetMetadata = 0x02000000, // CLIENT_OPTIONAL_RESULTSET_METADATA (MySQL 8)
  ZstdCompression = 0x04000000, // CLIENT_ZSTD_COMPRESSION_ALGORITHM (MySQL 8)
  QueryAttributes = 0x08000000, // CLIENT_QUERY_ATTRIBUTES (MySQL 8)
  MultiFactorAuth = 0x10000000, // MULTI_FACTOR_AUTHENTICATION (MySQL 8)
  CapabilityExtension = 0x20000000, // CLIENT_CAPABILITY_EXTENSION
  SslVerifyServerCert = 0x40000000, // CLIENT_SSL_VERIFY_SERVER_CERT
  RememberOptions = 0x80000000, // CLIENT_REMEMBER_OPTIONS
}

/**
 * MariaDB's extended capabilities: bits 32..63 of its 64-bit set, carried in
 * the last 4 bytes of the filler of the handshake and the handshake response,
 * meaningful only when the server clears CLIENT_MYSQL (Capability.LongPassword).
 * Values here are relative to bit 32.
 */
export const enum MariaDbCapability {
  Progress = 0x00000001, // MARIADB_CLIENT_PROGRESS (1 << 32)
  ComMulti = 0x00000002, // MARIADB_CLIENT_COM_MULTI (1 << 33)
  StmtBulkOperations = 0x00000004, // MARIADB_CLIENT_STMT_BULK_OPERATIONS (1 << 34)
  ExtendedTypeInfo = 0x00000008, // MARIADB_CLIENT_EXTENDED_METADATA (1 << 35)
  CacheMetadata = 0x00000010, // MARIADB_CLIENT_CACHE_METADATA (1 << 36)
  BulkUnitResults = 0x00000020, // MARIADB_CLIENT_BULK_UNIT_RESULTS (1 << 37)
}

/** SERVER_STATUS_* flags of OK/EOF packets. */
export const enum ServerStatus {
  InTrans = 0x0001, // SERVER_STATUS_IN_TRANS
  Autocommit = 0x0002, // SERVER_STATUS_AUTOCOMMIT
  MoreResultsExist = 0x0008, // SERVER_MORE_RESULTS_EXISTS
  NoGoodIndexUsed = 0x0010, // SERVER_QUERY_NO_GOOD_INDEX_USED
  NoIndexUsed = 0x0020, // SERVER_QUERY_NO_INDEX_USED
  CursorExists = 0x0040, // SERVER_STATUS_CURSOR_EXISTS
  LastRowSent = 0x0080, // SERVER_STATUS_LAST_ROW_SENT
  DbDropped = 0x0100, // SERVER_STATUS_DB_DROPPED
  NoBackslashEscapes = 0x0200, // SERVER_STATUS_NO_BACKSLASH_ESCAPES
  MetadataChanged = 0x0400, // SERVER_STATUS_METADATA_CHANGED
  QueryWasSlow = 0x0800, // SERVER_QUERY_WAS_SLOW
  PsOutParams = 0x1000, // SERVER_PS_OUT_PARAMS
  InTransReadonly = 0x2000, // SERVER_STATUS_IN_TRANS_READONLY
  SessionStateChanged = 0x4000, // SERVER_SESSION_STATE_CHANGED
}

/** First byte of a command packet (client → server, sequence id 0). */
export const enum Command {
  Sleep = 0x00, // COM_SLEEP
  Quit = 0x01, // COM_QUIT
  InitDb = 0x02, // COM_INIT_DB
  Query = 0x03, // COM_QUERY
  FieldList = 0x04, // COM_FIELD_LIST
  CreateDb = 0x05, // COM_CREATE_DB
  DropDb = 0x06, // COM_DROP_DB
  Refresh = 0x07, // COM_REFRESH
  Shutdown = 0x08, // COM_SHUTDOWN
  Statistics = 0x09, // COM_STATISTICS
  ProcessInfo = 0x0a, // COM_PROCESS_INFO
  Connect = 0x0b, // COM_CONNECT
  ProcessKill = 0x0c, // COM_PROCESS_KILL
  Debug = 0x0d, // COM_DEBUG
  Ping = 0x0e, // COM_PING
  Time = 0x0f, // COM_TIME
  DelayedInsert = 0x10, // COM_DELAYED_INSERT
  ChangeUser = 0x11, // COM_CHANGE_USER
  BinlogDump = 0x12, // COM_BINLOG_DUMP
  TableDump = 0x13, // COM_TABLE_DUMP
  ConnectOut = 0x14, // COM_CONNECT_OUT
  RegisterSlave = 0x15, // COM_REGISTER_SLAVE
  StmtPrepare = 0x16, // COM_STMT_PREPARE
  StmtExecute = 0x17, // COM_STMT_EXECUTE
  StmtSendLongData = 0x18, // COM_STMT_SEND_LONG_DATA
  StmtClose = 0x19, // COM_STMT_CLOSE
  StmtReset = 0x1a, // COM_STMT_RESET
  SetOption = 0x1b, // COM_SET_OPTION
  StmtFetch = 0x1c, // COM_STMT_FETCH
  Daemon = 0x1d, // COM_DAEMON
  BinlogDumpGtid = 0x1e, // COM_BINLOG_DUMP_GTID
  ResetConnection = 0x1f, // COM_RESET_CONNECTION
  StmtBulkExecute = 0xfa, // COM_STMT_BULK_EXECUTE (MariaDB)
  Multi = 0xfe, // COM_MULTI (MariaDB)
}

/** First byte of a server response payload. */
export const enum ResponseHeader {
  Ok = 0x00, // OK_Packet
  AuthMoreData = 0x01, // AuthMoreData (caching_sha2_password, …)
  LocalInfile = 0xfb, // LOCAL INFILE request
  Eof = 0xfe, // EOF_Packet (payload < 9 bytes) / AuthSwitchRequest during auth
  Err = 0xff, // ERR_Packet
}

/** Sub-codes of caching_sha2_password's AuthMoreData packets. */
export const enum CachingSha2Status {
  RequestPublicKey = 0x02, // client → server: send me your RSA public key
  FastAuthSuccess = 0x03, // server → client: scramble matched the cache, OK follows
  PerformFullAuthentication = 0x04, // server → client: send the password (TLS or RSA)
}

/** Size of one wire packet's payload when a logical packet continues. */
export const MAX_PACKET_PAYLOAD = 0xffffff;

/** Bytes of the packet header: 3-byte length + 1-byte sequence id. */
export const PACKET_HEADER_SIZE = 4;

/** utf8mb4_general_ci, the collation we announce before a backend's is known. */
export const DEFAULT_COLLATION = 45;

export const NATIVE_PASSWORD_PLUGIN = "mysql_native_password";
export const CACHING_SHA2_PASSWORD_PLUGIN = "caching_sha2_password";
