/**
 * stdio servers started through a wrapper that does not exec (`sh -c "node server.mjs; true"`, as npx and uvx
 * do) are ended with their whole process group: by `disconnectUser`, by idle eviction, by `manager.close()`, and
 * when they ignore SIGTERM. Lines over the transport's message cap fail only their request; the server keeps
 * running. Everything runs as local child processes.
 */
import { readFileSync } from 'node:fs';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult, JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import { MCPManager } from '../../src/MCPManager.js';
import { MCPConnectionFactory } from '../../src/MCPConnectionFactory.js';
import { SwitchboardError } from '../../src/errors.js';
import type { DisconnectEvent } from '../../src/events.js';
import { StdioProcessTransport } from '../../src/transport/stdioClientTransport.js';
import { localErrorOf } from '../../src/transport/localAnswer.js';
import { rejection, rejectionOf } from '../support/errors.js';

const PID_SERVER = fileURLToPath(new URL('../fixtures/stdio/pid-server.mjs', import.meta.url));
const LINES = fileURLToPath(new URL('../fixtures/stdio/lines.mjs', import.meta.url));

/** `sh -c` running the pid server and then `true`: the shell cannot exec node, so node is its child. */
function wrapped(...serverArgs: string[]): { command: string; args: string[] } {
  return { command: 'sh', args: ['-c', `"${process.execPath}" "$0" "$@"; true`, PID_SERVER, ...serverArgs] };
}

/** Whether `pid` still runs: a zombie (dead, waiting for PID 1 to reap it) counts as gone. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
  if (process.platform !== 'linux') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const state = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function textOf(result: CallToolResult): string {
  const first = result.content[0];
  if (first?.type !== 'text') throw new Error('expected a text result');
  return first.text;
}

const USERS = [{ id: 'u1' }, { id: 'u2' }, { id: 'u3' }];

/** The server as a user would configure it: one child per user (a `{{user.id}}` placeholder in `env`). */
const PER_USER = { ...wrapped(), env: { MCP_USER: '{{user.id}}' }, stderr: 'ignore' };

describe('stdio servers behind a wrapper end with their process group (through MCPManager)', () => {
  let manager: MCPManager | undefined;
  const started: number[] = [];
  /** Factories made by a test, closed after its manager. */
  const factories: MCPConnectionFactory[] = [];
  /** These servers ignore stdin's end: a short grace keeps each close quick (the default is 2 s). */
  const fastClose = () => {
    const factory = new MCPConnectionFactory({ stdioCloseGraceMs: 100 });
    factories.push(factory);
    return factory;
  };
  afterEach(async () => {
    await manager?.close();
    manager = undefined;
    for (const f of factories.splice(0)) await f.close();
    // Whatever a failed assertion left running is ended here, not left to the next test file.
    for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });

  async function serverPid(m: MCPManager, user: { id: string }): Promise<number> {
    const pid = Number(textOf(await m.callTool({ user, serverName: 'local', toolName: 'pid' })));
    expect(Number.isInteger(pid)).toBe(true);
    started.push(pid);
    return pid;
  }

  it('3 users → 3 servers; each is gone as soon as disconnectUser resolves', async () => {
    manager = new MCPManager({ servers: { local: PER_USER }, connectionFactory: fastClose() });
    const m = manager;
    const pids = await Promise.all(USERS.map((u) => serverPid(m, u)));
    expect(new Set(pids).size).toBe(3);
    expect(pids.every(alive)).toBe(true);

    // Each check runs the moment its own disconnect resolves.
    const goneAfter = await Promise.all(USERS.map((u, i) => m.disconnectUser(u.id).then(() => !alive(pids[i]!))));
    expect(goneAfter).toEqual([true, true, true]);
  });

  it('idle eviction ends the server before the disconnect event is emitted', async () => {
    manager = new MCPManager({ servers: { local: PER_USER }, idleTimeoutMs: 50, connectionFactory: fastClose() });
    const m = manager;
    const evicted = new Map<string, boolean>();
    const pids = new Map<string, number>();
    const allDisconnected = new Promise<void>((resolve) => {
      m.on('disconnect', (e: DisconnectEvent) => {
        if (e.reason !== 'idle' || e.userId === undefined) return;
        evicted.set(e.userId, !alive(pids.get(e.userId)!));
        if (evicted.size === USERS.length) resolve();
      });
    });
    for (const u of USERS) pids.set(u.id, await serverPid(m, u));
    expect(new Set(pids.values()).size).toBe(3);

    await allDisconnected;
    expect(Object.fromEntries(evicted)).toEqual({ u1: true, u2: true, u3: true });
  });

  it('manager.close() leaves no server running', async () => {
    manager = new MCPManager({ servers: { local: PER_USER }, connectionFactory: fastClose() });
    const m = manager;
    const pids = await Promise.all(USERS.map((u) => serverPid(m, u)));
    expect(new Set(pids).size).toBe(3);
    await m.close();
    expect(pids.filter(alive)).toEqual([]);
  });

  it('a result over limits.maxResultBytes is too_large; the same server answers the next call', async () => {
    // 100 kB cap; the result (120 kB of text) is over it but within 64 KiB of envelope room: too_large from the
    // connection's own result check today, and the same once the factory passes maxMessageBytes to the transport.
    const factory = new MCPConnectionFactory({ limits: { maxResultBytes: 100_000 }, stdioCloseGraceMs: 100 });
    factories.push(factory);
    manager = new MCPManager({ servers: { local: PER_USER }, connectionFactory: factory });
    const m = manager;
    const user = USERS[0]!;
    try {
      const before = await serverPid(m, user);
      const err = await rejectionOf(m.callTool({ user, serverName: 'local', toolName: 'big', arguments: { bytes: 120_000 } }), SwitchboardError);
      expect(err.code).toBe('too_large');
      expect(err.retryable).toBe(false);
      expect(await serverPid(m, user)).toBe(before);
      expect(alive(before)).toBe(true);
      expect(m.stats().userPool.connects).toBe(1);
    } finally {
      await m.close();
      await factory.close();
    }
  });

  it('a missing command is connect_failed and not retryable', async () => {
    manager = new MCPManager({ servers: { local: { command: '/nonexistent/no-such-mcp-server', stderr: 'ignore' } } });
    const err = await rejectionOf(manager.callTool({ user: USERS[0]!, serverName: 'local', toolName: 'pid' }), SwitchboardError);
    expect(err.code).toBe('connect_failed');
    expect(err.retryable).toBe(false);
    expect(err.toJSON().rootCause).toEqual({ code: 'ENOENT', syscall: 'spawn /nonexistent/no-such-mcp-server' });
  });
});

describe('StdioProcessTransport', () => {
  const started: number[] = [];
  afterEach(() => {
    for (const pid of started.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
  });

  async function connect(transport: StdioProcessTransport): Promise<{ client: Client; serverPid: number }> {
    const client = new Client({ name: 'test', version: '1.0.0' });
    await client.connect(transport);
    started.push(transport.pid!);
    const serverPid = Number(textOf((await client.callTool({ name: 'pid' })) as CallToolResult));
    started.push(serverPid);
    return { client, serverPid };
  }

  it('a server that ignores SIGTERM is SIGKILLed after the grace, with the wrapper; close() is idempotent and onclose fires once', async () => {
    const transport = new StdioProcessTransport({ ...wrapped('--ignore-sigterm'), stderr: 'ignore', closeGraceMs: 100 });
    const { serverPid } = await connect(transport);
    const shPid = transport.pid!;
    expect(serverPid).not.toBe(shPid); // the wrapper did not exec: the server is a grandchild
    let closes = 0;
    const onclose = transport.onclose;
    transport.onclose = () => {
      closes++;
      onclose?.();
    };

    const first = transport.close();
    expect(transport.close()).toBe(first);
    await first;
    expect(alive(serverPid)).toBe(false);
    expect(alive(shPid)).toBe(false);
    expect(closes).toBe(1);
    await transport.close();
    expect(closes).toBe(1);
    await expect(transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' })).rejects.toThrow('Not connected');
  });

  it('a wrapper that exits while its server runs takes the server along; onclose follows', async () => {
    // The shell starts the server in the background (stdin passed on through fd 3: a background job's own stdin
    // is /dev/null), prints its pid to stderr and exits. Node destroys a child's stdin when it exits, so nothing
    // could reach this server any more: the transport ends the rest of the group and reports the close.
    const script = `exec 3<&0; "${process.execPath}" "$0" <&3 3<&- & echo $! >&2`;
    const transport = new StdioProcessTransport({ command: 'sh', args: ['-c', script, PID_SERVER], stderr: 'pipe', closeGraceMs: 100 });
    let printed = '';
    transport.stderr!.on('data', (d: Buffer) => (printed += String(d)));
    const stderrEnded = once(transport.stderr!, 'end');
    let closes = 0;
    const closed = new Promise<void>((resolve) => {
      transport.onclose = () => {
        closes++;
        resolve();
      };
    });
    await transport.start();
    await closed;
    await stderrEnded;
    const serverPid = Number(printed.trim());
    expect(Number.isInteger(serverPid) && serverPid !== transport.pid).toBe(true);
    started.push(serverPid);
    await transport.close(); // the close the exit started: resolves once the group is gone
    expect(alive(serverPid)).toBe(false);
    expect(closes).toBe(1);
  });

  it('start() rejects with the spawn error (ENOENT, syscall "spawn <command>"); close() after it resolves', async () => {
    const transport = new StdioProcessTransport({ command: '/nonexistent/no-such-mcp-server', args: ['--secret'], stderr: 'ignore' });
    const err = (await rejection(transport.start())) as NodeJS.ErrnoException;
    expect(err.code).toBe('ENOENT');
    expect(err.syscall).toBe('spawn /nonexistent/no-such-mcp-server');
    await transport.close();
    expect(transport.pid).toBeNull();
  });

  it('an answer over maxMessageBytes fails that request alone with too_large; the server is not restarted', async () => {
    const transport = new StdioProcessTransport({ ...wrapped(), stderr: 'ignore', serverName: 'local', maxMessageBytes: 10_000, closeGraceMs: 100 });
    const { client, serverPid } = await connect(transport);
    const childPid = transport.pid;
    try {
      const err = await rejection(client.callTool({ name: 'big', arguments: { bytes: 50_000 } }));
      const own = localErrorOf(err);
      expect(own).toBeInstanceOf(SwitchboardError);
      expect(own).toMatchObject({ code: 'too_large', retryable: false, serverName: 'local' });
      // Small answers still fit, on the same server process.
      expect(textOf((await client.callTool({ name: 'big', arguments: { bytes: 10 } })) as CallToolResult)).toBe('x'.repeat(10));
      expect(Number(textOf((await client.callTool({ name: 'pid' })) as CallToolResult))).toBe(serverPid);
      expect(transport.pid).toBe(childPid);
    } finally {
      await client.close();
    }
    expect(alive(serverPid)).toBe(false);
  });

  it('adds one process exit listener for all its instances, not one each', async () => {
    const first = new StdioProcessTransport({ command: 'cat', stderr: 'ignore' });
    await first.start();
    const listeners = process.listenerCount('exit');
    const more = Array.from({ length: 5 }, () => new StdioProcessTransport({ command: 'cat', stderr: 'ignore' }));
    await Promise.all(more.map((t) => t.start()));
    expect(process.listenerCount('exit')).toBe(listeners);
    await Promise.all([first, ...more].map((t) => t.close()));
    expect([first, ...more].map((t) => alive(t.pid!))).toEqual([false, false, false, false, false, false]);
  });

  it('rejects bad options with a TypeError naming the option', () => {
    expect(() => new StdioProcessTransport({ command: '' })).toThrow(new TypeError('StdioProcessTransport: command must be a non-empty string'));
    expect(() => new StdioProcessTransport({ command: 'x', maxMessageBytes: 0 })).toThrow(/maxMessageBytes must be a positive integer \(got 0\)/);
    expect(() => new StdioProcessTransport({ command: 'x', closeGraceMs: -1 })).toThrow(/closeGraceMs must be a non-negative number/);
  });
});

describe('StdioProcessTransport line cap', () => {
  const CAP = 1_000;
  type Item = string | { head: string; pad: number; tail: string };

  /** Runs the line writer with `items` then a last `done` notification; resolves with what was delivered. */
  async function deliver(items: Item[]): Promise<{ messages: JSONRPCMessage[]; errors: Error[] }> {
    const all = [...items, JSON.stringify({ jsonrpc: '2.0', method: 'done' })];
    const transport = new StdioProcessTransport({ command: process.execPath, args: [LINES, JSON.stringify(all)], stderr: 'ignore', serverName: 'lines', maxMessageBytes: CAP });
    const messages: JSONRPCMessage[] = [];
    const errors: Error[] = [];
    // Ends at the `done` line, or when the writer exits without writing it (then the assertions fail).
    const done = new Promise<void>((resolve) => {
      transport.onclose = resolve;
      transport.onmessage = (m) => {
        if ('method' in m && m.method === 'done') resolve();
        else messages.push(m);
      };
    });
    transport.onerror = (e) => errors.push(e);
    await transport.start();
    try {
      await done;
    } finally {
      await transport.close();
    }
    return { messages, errors };
  }

  /** A response line of exactly `bytes` bytes whose id comes last (as the SDK writes it). */
  function responseLine(id: number | string, bytes: number): Item {
    const head = '{"result":{"content":[{"type":"text","text":"';
    const tail = `"}]},"jsonrpc":"2.0","id":${JSON.stringify(id)}}`;
    const pad = bytes - head.length - tail.length;
    if (pad < 0) throw new RangeError(`a response line needs at least ${head.length + tail.length} bytes`);
    return { head, pad, tail };
  }

  function tooLarge(m: JSONRPCMessage | undefined): SwitchboardError | undefined {
    const data = m && 'error' in m ? (m.error.data as unknown) : undefined;
    return data instanceof SwitchboardError ? data : undefined;
  }

  it('a line of exactly the cap is read; one byte more is answered locally with too_large, and reading goes on', async () => {
    const { messages, errors } = await deliver([responseLine(1, CAP), responseLine(2, CAP + 1), responseLine(3, 100)]);
    expect(errors).toEqual([]);
    expect(messages).toHaveLength(3);
    expect(messages[0]).toMatchObject({ id: 1, result: { content: [{ type: 'text' }] } });
    expect(messages[1]).toMatchObject({ jsonrpc: '2.0', id: 2, error: { message: expect.stringContaining('larger than 1000 bytes') } });
    expect(tooLarge(messages[1])).toMatchObject({ code: 'too_large', retryable: false, serverName: 'lines' });
    expect(messages[2]).toMatchObject({ id: 3, result: {} });
  });

  it('finds a string id at the start of the line (Python-style envelope) and ignores nested ids', async () => {
    const head = '{"jsonrpc":"2.0","id":"req-7","result":{"content":[{"id":99,"type":"text","text":"';
    const { messages, errors } = await deliver([{ head, pad: 5 * CAP, tail: '"}]}}' }]);
    expect(errors).toEqual([]);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatchObject({ id: 'req-7', error: {} });
    expect(tooLarge(messages[0])?.code).toBe('too_large');
  });

  it('an oversized request from the server or a line without an id goes to onerror only', async () => {
    const request = { head: '{"method":"sampling/createMessage","params":{"x":"', pad: 3 * CAP, tail: '"},"jsonrpc":"2.0","id":0}' };
    const noId = { head: '{"jsonrpc":"2.0","method":"notifications/message","params":{"data":"', pad: 3 * CAP, tail: '"}}' };
    const { messages, errors } = await deliver([request, noId, responseLine(4, 100)]);
    expect(messages).toEqual([expect.objectContaining({ id: 4 })]);
    expect(errors).toHaveLength(2);
    for (const e of errors) expect(e).toMatchObject({ code: 'too_large', serverName: 'lines' });
  });

  it('a line that is not JSON-RPC is reported and the next one is still read', async () => {
    const { messages, errors } = await deliver(['not json', responseLine(5, 100)]);
    expect(errors).toHaveLength(1);
    expect(messages).toEqual([expect.objectContaining({ id: 5 })]);
  });
});
