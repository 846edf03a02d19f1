/**
 * MCP over stdio, client side, ending the server's whole process tree. The SDK's `StdioClientTransport` signals
 * only its direct child, so a server started through a wrapper that does not `exec` (`sh -c "node server.mjs"`,
 * as `npx` and `uvx` do) outlives eviction and `close()`: one orphan server per user. This transport starts the
 * child as the leader of its own process group and ends the group.
 * @module
 */
import { spawn as nodeSpawn, spawnSync, type ChildProcess, type IOType } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { PassThrough, type Stream } from 'node:stream';
import spawn from 'cross-spawn';
import { getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { ReadBuffer, serializeMessage } from '@modelcontextprotocol/sdk/shared/stdio.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { SwitchboardError } from '../errors.js';
import { lastBytes, PEEK_BYTES, peekEnvelope } from './envelopePeek.js';
import { localErrorAnswer } from './localAnswer.js';

/** Default largest message accepted: a 16 MiB result plus 64 KiB of JSON-RPC envelope. */
const DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024 + 64 * 1024;
/** Default wait after stdin EOF, and again after SIGTERM, in ms. */
const DEFAULT_CLOSE_GRACE_MS = 2_000;
/**
 * Upper bound on the wait for the group to be gone after SIGKILL, in ms. SIGKILL cannot be ignored; what is left
 * to wait for is the reaping of the killed processes (orphans are reaped by init, which some containers do slowly).
 */
const KILL_CONFIRM_MS = 5_000;
const NEWLINE = 0x0a;
const isWindows = process.platform === 'win32';

/**
 * Options of {@link StdioProcessTransport}: what to run (as the SDK's `StdioServerParameters`) plus the message
 * cap and the close grace.
 *
 * @example
 * ```ts
 * const opts: StdioProcessTransportOptions = {
 *   command: 'npx',
 *   args: ['-y', '@modelcontextprotocol/server-filesystem', '/srv/files'],
 *   stderr: 'ignore',
 *   maxMessageBytes: 4 * 1024 * 1024 + 64 * 1024,
 *   closeGraceMs: 1_000,
 * };
 * ```
 */
export interface StdioProcessTransportOptions {
  /** The command to run (looked up on `PATH`; Windows `.cmd` shims work, through `cross-spawn`). */
  command: string;
  /** Its arguments. */
  args?: string[];
  /**
   * The child's whole environment, used as given (merge `getDefaultEnvironment()` from the SDK in yourself).
   * Absent: the SDK's short default list (`PATH`, `HOME`, …), never the host's whole environment.
   */
  env?: Record<string, string>;
  /** The child's working directory; default the host's. */
  cwd?: string;
  /** The child's stderr: `'inherit'` (default), `'ignore'`, `'pipe'` (read it from {@link StdioProcessTransport.stderr}), a stream or an fd. */
  stderr?: IOType | Stream | number;
  /**
   * Largest message accepted from the server, in bytes, newline excluded (default 16 MiB + 64 KiB). A longer line
   * is not buffered: it is skipped, and the request it answers fails locally with `SwitchboardError('too_large')`;
   * the server keeps running and later messages are read as usual.
   */
  maxMessageBytes?: number;
  /** How long `close()` waits after closing stdin, and again after SIGTERM, before escalating, in ms (default 2 000). */
  closeGraceMs?: number;
  /** The server's name in the config, for error messages and `SwitchboardError.serverName`. */
  serverName?: string;
}

/**
 * MCP over stdio, client side (implements the SDK `Transport`). Like the SDK's `StdioClientTransport` (same
 * framing, `cross-spawn`, `pid` and `stderr`), with two differences:
 *
 * - `close()` ends the whole process tree: on POSIX the child is spawned `detached`, so it leads its own process
 *   group, and `close()` ends stdin, waits `closeGraceMs` for the child to exit, then SIGTERMs the group, waits
 *   again, then SIGKILLs it; the group is signalled even when the direct child already exited (a grandchild may
 *   still run). It resolves once the group is gone (bounded). When the direct child exits on its own, the
 *   transport closes itself the same way (its stdin is gone with it), so a wrapper that dies takes its server
 *   along and `onclose` follows. On Windows: `taskkill /T /F` after the grace. If the
 *   host process exits with children still running, their groups are killed synchronously from one
 *   `process.on('exit')` listener. (A host killed by a signal it does not handle runs no exit listener: handle
 *   SIGTERM and SIGINT by closing the manager.)
 * - a line longer than `maxMessageBytes` is skipped without being buffered; the request it answered gets a local
 *   `too_large` error through `onmessage` (its id is read from the line's first or last 256 bytes), or, when no id
 *   can be found, `onerror` is told. The server is not restarted.
 *
 * @example
 * ```ts
 * import { Client } from '@modelcontextprotocol/sdk/client/index.js';
 * const transport = new StdioProcessTransport({ command: 'npx', args: ['-y', '@modelcontextprotocol/server-everything'], stderr: 'ignore' });
 * const client = new Client({ name: 'host', version: '1.0.0' });
 * await client.connect(transport);
 * console.log(`server pid ${transport.pid}`);
 * await client.close(); // resolves once the server and everything it started are gone
 * ```
 */
export class StdioProcessTransport implements Transport {
  /** Called once, when the child's stdio has closed (it exited, or `close()` ended it). */
  onclose?: () => void;
  /** Called on a spawn, pipe, parse or size error. */
  onerror?: (error: Error) => void;
  /** Called for each message received (and for the local `too_large` answer to a request whose response was too long). */
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;

  readonly #opts: StdioProcessTransportOptions;
  readonly #maxBytes: number;
  readonly #graceMs: number;
  readonly #readBuffer: ReadBuffer;
  readonly #stderrStream: PassThrough | undefined;
  #child: ChildProcess | undefined;
  #closing: Promise<void> | undefined;
  #closeReported = false;
  /** The child's stdio closed and its group was found empty: never signal that id again (it may be reused). */
  #groupGone = false;
  /** Bytes of the current line seen so far (newline excluded). */
  #lineBytes = 0;
  /** The current line is over the cap: its bytes are dropped up to the next newline. */
  #skipping = false;
  /** The first and the last {@link PEEK_BYTES} bytes of the current line. */
  #head: Buffer = Buffer.alloc(0);
  #tail: Buffer = Buffer.alloc(0);

  constructor(opts: StdioProcessTransportOptions) {
    if (!opts || typeof opts !== 'object') throw new TypeError('StdioProcessTransport: options must be an object');
    if (typeof opts.command !== 'string' || opts.command === '') throw new TypeError('StdioProcessTransport: command must be a non-empty string');
    const max = opts.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    if (!Number.isSafeInteger(max) || max <= 0) throw new TypeError(`StdioProcessTransport: maxMessageBytes must be a positive integer (got ${String(opts.maxMessageBytes)})`);
    const grace = opts.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (typeof grace !== 'number' || !Number.isFinite(grace) || grace < 0) {
      throw new TypeError(`StdioProcessTransport: closeGraceMs must be a non-negative number of ms (got ${String(opts.closeGraceMs)})`);
    }
    this.#opts = opts;
    this.#maxBytes = max;
    this.#graceMs = grace;
    // Only one line (at most the cap plus its newline) is ever in the buffer: complete lines are read at once.
    this.#readBuffer = new ReadBuffer({ maxBufferSize: max + 1 });
    // Handed out before start(), so that a listener attached early misses nothing the server writes.
    if (opts.stderr === 'pipe' || opts.stderr === 'overlapped') this.#stderrStream = new PassThrough();
  }

  /** Spawns the server; resolves once it runs, rejects with the spawn error (`ENOENT`, `EACCES`, `syscall: 'spawn <command>'`). */
  start(): Promise<void> {
    if (this.#child || this.#closing) return Promise.reject(new Error('StdioProcessTransport already started (Client.connect() calls start() itself)'));
    return new Promise<void>((resolve, reject) => {
      let child: ChildProcess;
      try {
        child = spawn(this.#opts.command, this.#opts.args ?? [], {
          env: this.#opts.env ?? getDefaultEnvironment(),
          ...(this.#opts.cwd === undefined ? {} : { cwd: this.#opts.cwd }),
          stdio: ['pipe', 'pipe', this.#opts.stderr ?? 'inherit'],
          shell: false,
          windowsHide: isWindows,
          // POSIX: the child leads a new process group, which close() signals as a whole. Not unref()'d: the
          // host still waits for it. (On Windows `detached` would open a console; taskkill /T walks the tree.)
          detached: !isWindows,
        });
      } catch (err) {
        reject(err);
        return;
      }
      this.#child = child;
      if (child.pid !== undefined) track(child.pid);
      child.on('error', (err) => {
        reject(err);
        this.onerror?.(err);
      });
      child.once('spawn', () => resolve());
      // Node destroys the child's stdin when the child exits: nothing can be sent any more. Whatever it started
      // is ended too (a wrapper that died leaves its server holding stdout, and 'close' would never come).
      child.once('exit', () => void this.close());
      child.once('close', () => {
        if (child.pid !== undefined && !groupAlive(child.pid)) {
          this.#groupGone = true;
          liveGroups.delete(child.pid);
        }
        this.#reportClose();
      });
      child.stdin?.on('error', (err) => this.onerror?.(err));
      child.stdout?.on('data', (chunk: Buffer) => this.#onData(chunk));
      // A server that closed its stdout can never answer again, even if it keeps running: end it, so that the
      // connection sees the loss (and reconnects) instead of every call waiting out its timeout.
      child.stdout?.once('end', () => void this.close());
      child.stdout?.on('error', (err) => this.onerror?.(err));
      if (this.#stderrStream && child.stderr) child.stderr.pipe(this.#stderrStream);
    });
  }

  /**
   * The child's stderr when `stderr: 'pipe'`: a stream handed out at once, even before `start()`, so that early
   * output is not lost. `null` otherwise.
   */
  get stderr(): Stream | null {
    return this.#stderrStream ?? this.#child?.stderr ?? null;
  }

  /** The child's pid (on POSIX also its process group id) once spawned; `null` before. */
  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** Writes one message to the server's stdin; waits for `drain` when the pipe is full. */
  send(message: JSONRPCMessage): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const stdin = this.#child?.stdin;
      if (!stdin || this.#closing || !stdin.writable) {
        reject(new Error('Not connected'));
        return;
      }
      if (stdin.write(serializeMessage(message))) {
        resolve();
        return;
      }
      const done = (): void => {
        stdin.off('drain', done);
        stdin.off('close', done);
        if (stdin.writableNeedDrain) reject(new Error('Not connected'));
        else resolve();
      };
      stdin.on('drain', done);
      stdin.on('close', done);
    });
  }

  /**
   * Ends the server and everything it started; idempotent (every call gets the same promise). Graceful first:
   * stdin is ended and the child gets `closeGraceMs` to exit; then the process group gets SIGTERM, `closeGraceMs`
   * more, then SIGKILL. Resolves once the group is gone (or, if it never goes, after a bound).
   */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    const child = this.#child;
    try {
      const pid = child?.pid;
      if (!child || pid === undefined) return; // never started, or the spawn failed: nothing runs
      const closed = new Promise<void>((resolve) => {
        if (this.#closeReported) resolve();
        else child.once('close', () => resolve());
      });
      try {
        child.stdin?.end();
      } catch {
        // the pipe is already broken: the child is gone or going
      }
      await waitUntil(exited(child), this.#graceMs);
      // Once everything ended on its own (#groupGone), the id is not signalled: it may belong to someone else by now.
      if (isWindows) {
        if (!hasExited(child)) await taskkill(pid, this.#graceMs);
      } else if (!this.#groupGone && signalGroup(pid, 'SIGTERM')) {
        if (!(await pollUntilGone(pid, this.#graceMs)) && signalGroup(pid, 'SIGKILL')) await pollUntilGone(pid, Math.max(this.#graceMs, KILL_CONFIRM_MS));
      }
      // The group is gone (or will not go): nothing holds the pipes any more, so 'close' comes next.
      await waitUntil(closed, this.#graceMs);
      liveGroups.delete(pid);
    } finally {
      this.#readBuffer.clear();
      this.#resetLine();
    }
  }

  #reportClose(): void {
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.onclose?.();
  }

  /**
   * Splits stdout into lines. A line within the cap goes to the SDK's ReadBuffer, which parses it once complete;
   * a line over the cap is dropped as it arrives (never held in memory), keeping only its two ends for the id.
   */
  #onData(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(NEWLINE, start);
      const end = nl === -1 ? chunk.length : nl;
      const part = chunk.subarray(start, end);
      this.#lineBytes += part.length;
      if (this.#head.length < PEEK_BYTES) this.#head = Buffer.concat([this.#head, part.subarray(0, PEEK_BYTES - this.#head.length)]);
      this.#tail = lastBytes(this.#tail, part, PEEK_BYTES);
      if (!this.#skipping && this.#lineBytes > this.#maxBytes) {
        this.#skipping = true;
        this.#readBuffer.clear();
      }
      if (!this.#skipping) {
        try {
          this.#readBuffer.append(nl === -1 ? part : chunk.subarray(start, nl + 1));
        } catch (err) {
          // Cannot happen (the buffer holds one line, within the cap); should it, this line is lost, not the next.
          this.#skipping = true;
          this.#readBuffer.clear();
          this.onerror?.(err as Error);
        }
      }
      if (nl === -1) return;
      if (this.#skipping) this.#answerOversized();
      else this.#readMessages();
      this.#resetLine();
      start = nl + 1;
    }
  }

  #readMessages(): void {
    for (;;) {
      let message: JSONRPCMessage | null;
      try {
        message = this.#readBuffer.readMessage();
      } catch (err) {
        // Not JSON-RPC: reported, and the next line is read as usual (the buffer is past this one).
        this.onerror?.(err as Error);
        continue;
      }
      if (message === null) return;
      this.onmessage?.(message);
    }
  }

  #answerOversized(): void {
    const who = this.#opts.serverName === undefined ? 'the MCP server' : `MCP server "${this.#opts.serverName}"`;
    const error = new SwitchboardError('too_large', `A message from ${who} is larger than ${this.#maxBytes} bytes (${this.#lineBytes} bytes); it was dropped`, {
      retryable: false,
      ...(this.#opts.serverName === undefined ? {} : { serverName: this.#opts.serverName }),
    });
    // A request or notification of the server carries the server's id, not one of ours: nothing to answer.
    const { id, fromServer } = peekEnvelope(this.#head.toString('utf8'), this.#tail.toString('utf8'));
    if (id === undefined || fromServer) this.onerror?.(error);
    else this.onmessage?.(localErrorAnswer(id, error));
  }

  #resetLine(): void {
    this.#lineBytes = 0;
    this.#skipping = false;
    this.#head = Buffer.alloc(0);
    this.#tail = Buffer.alloc(0);
  }
}

// ---- process groups still running, killed if the host exits -------------------------------------------------

/**
 * Pids (= process group ids on POSIX) of children that may still run, across every transport. One module-level
 * set and ONE `exit` listener, installed on first use, rather than a listener per transport: 1,000 users would
 * mean 1,000 listeners (Node warns past 10), each keeping its transport reachable until the host exits.
 */
const liveGroups = new Set<number>();
let exitHookInstalled = false;

function track(pid: number): void {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', killLiveGroups);
  }
  liveGroups.add(pid);
}

/** The host is exiting: only synchronous work runs now. */
function killLiveGroups(): void {
  for (const pid of liveGroups) {
    if (isWindows) spawnSync('taskkill', ['/pid', String(pid), '/T', '/F'], { stdio: 'ignore', windowsHide: true, timeout: 5_000 });
    else signalGroup(pid, 'SIGKILL');
  }
  liveGroups.clear();
}

/** Sends `signal` to process group `pgid`; false when the group no longer exists. */
function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    // EPERM: a member we may not signal; it exists, so the group is not gone.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/**
 * Whether a member of group `pgid` still runs. A member that died but was not yet reaped (a zombie: an orphaned
 * grandchild waits for PID 1 to reap it, which some container inits do late and a Node PID 1 never does) holds no
 * resources and counts as gone; on Linux `/proc` tells them apart, elsewhere any member counts.
 */
function groupAlive(pgid: number): boolean {
  if (isWindows) return false;
  if (!signalGroup(pgid, 0 as unknown as NodeJS.Signals)) return false;
  return process.platform !== 'linux' || groupHasLiveMember(pgid);
}

/** Scans `/proc` for a process of group `pgid` that is not a zombie; true when `/proc` cannot be read. */
function groupHasLiveMember(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  for (const entry of entries) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp …": comm may hold spaces and parentheses, so read after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') return true;
  }
  return false;
}

/** Probes the group until it is gone (true) or `ms` have passed (false); backs off from 5 ms to 100 ms. */
async function pollUntilGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  for (let wait = 5; ; wait = Math.min(wait * 2, 100)) {
    if (!groupAlive(pgid)) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await delay(Math.min(wait, left));
  }
}

function hasExited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

function exited(child: ChildProcess): Promise<void> {
  if (hasExited(child)) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

/** Windows: ends the tree of `pid` (best effort), waiting at most `ms` for taskkill. */
function taskkill(pid: number, ms: number): Promise<void> {
  return waitUntil(
    new Promise<void>((resolve) => {
      const tk = nodeSpawn('taskkill', ['/pid', String(pid), '/T', '/F'], { stdio: 'ignore', windowsHide: true });
      tk.once('error', () => resolve());
      tk.once('exit', () => resolve());
    }),
    Math.max(ms, 1_000),
  );
}

/** Waits for `p` or `ms`, whichever comes first, on an unref'd timer. */
function waitUntil(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, ms);
    timer.unref();
  });
  return Promise.race([p.then(() => undefined), bound]).finally(() => clearTimeout(timer));
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
