import { join } from 'node:path';
import { parseArgs, UsageError, type FlagSpec } from '../../src/cli/args.js';
import { COMMANDS, main, type CliCommand } from '../../src/cli/main.js';
import { capturedIo } from '../support/cli.js';

const FIXTURES = join(process.cwd(), '__tests__/fixtures/configs');

describe('mcp-switchboard validate', () => {
  it('prints the servers of a valid file and exits 0', async () => {
    const io = capturedIo();
    expect(await main(['validate', join(FIXTURES, 'switchboard.yaml')], io)).toBe(0);
    expect(io.out()).toBe(['ok: 3 servers (switchboard)', '  everything: stdio', '  graph: streamable-http, per-user', '  github: streamable-http, per-user', ''].join('\n'));
    expect(io.err()).toBe('');
  });

  it('prints import warnings with their paths, resolving a relative path against cwd', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'librechat.yaml'], io)).toBe(0);
    const lines = io.out().trimEnd().split('\n');
    expect(lines[0]).toBe('ok: 7 servers (librechat)');
    expect(lines).toContain('warning: mcpServers.filesystem.iconPath: not imported: display icon of the LibreChat UI');
    expect(lines).toContain('warning: mcpServers.calendar.oauth.client_secret: not imported: a literal secret is not copied; write it as ${ENV_NAME} and it is');
  });

  it('prints each problem of an invalid file as `path: message` on its own line and exits 2', async () => {
    const io = capturedIo();
    expect(await main(['validate', join(FIXTURES, 'invalid.yaml')], io)).toBe(2);
    expect(io.err().split('\n')).toEqual([
      'servers.github.url: must be an absolute URL (http or https), e.g. https://mcp.example.com/mcp',
      'servers.github.timeoutMs: must be > 0',
      'servers.files.obo: On-Behalf-Of needs a header-capable transport (sse or streamable-http), not stdio',
      '',
    ]);
    expect(io.out()).toBe('');
  });

  it('reports syntax errors and unreadable files under (file), exit 2', async () => {
    const broken = capturedIo();
    expect(await main(['validate', join(FIXTURES, 'broken.yaml')], broken)).toBe(2);
    expect(broken.err()).toMatch(/^\(file\): YAML line \d+, column \d+: /);
    expect(broken.err()).not.toContain('secret-in-broken-file');
    const missing = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'missing.yaml'], missing)).toBe(2);
    expect(missing.err()).toBe(`(file): cannot read ${join(FIXTURES, 'missing.yaml')} (ENOENT)\n`);
  });

  it('--format overrides detection', async () => {
    const io = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', '--format', 'switchboard', 'librechat.yaml'], io)).toBe(2);
    expect(io.err()).toBe('servers: is missing\n');
    const io2 = capturedIo({ cwd: FIXTURES });
    expect(await main(['validate', 'claude_desktop_config.json', '--format=claude-desktop'], io2)).toBe(0);
    expect(io2.out()).toMatch(/^ok: 3 servers \(claude-desktop\)\n/);
  });

  it('wrong usage exits 2 with a usage line', async () => {
    for (const argv of [['validate'], ['validate', 'a', 'b'], ['validate', 'a', '--nope'], ['validate', 'a', '--format', 'cursor'], ['validate', 'a', '--format']]) {
      const io = capturedIo();
      expect(await main(argv, io)).toBe(2);
      expect(io.err()).toMatch(/^mcp-switchboard: .+\nusage: mcp-switchboard validate <file> \[--format FORMAT\] \[--json\] \[--print\]\n$/);
      expect(io.out()).toBe('');
    }
  });
});

describe('mcp-switchboard', () => {
  it('an unknown command exits 2', async () => {
    const io = capturedIo();
    expect(await main(['deploy', 'x'], io)).toBe(2);
    expect(io.err()).toBe('mcp-switchboard: unknown command "deploy"\nrun `mcp-switchboard help` for the list of commands\n');
  });

  it('no command prints the overview on stderr and exits 2; help prints it on stdout and exits 0', async () => {
    const none = capturedIo();
    expect(await main([], none)).toBe(2);
    expect(none.err()).toMatch(/^usage: mcp-switchboard <command>/);
    for (const argv of [['help'], ['--help'], ['-h']]) {
      const io = capturedIo();
      expect(await main(argv, io)).toBe(0);
      expect(io.out()).toMatch(/commands:\n(  \S+ +.*\n)*  validate  check a config file/);
    }
  });

  it('help for one command lists its options', async () => {
    for (const argv of [['help', 'validate'], ['validate', '--help'], ['validate', '-h']]) {
      const io = capturedIo();
      expect(await main(argv, io)).toBe(0);
      expect(io.out()).toMatch(/^usage: mcp-switchboard validate <file> \[--format FORMAT\] \[--json\] \[--print\]\n/);
      expect(io.out()).toMatch(/--format FORMAT {2}file format: auto \(default\), switchboard, librechat, claude-desktop, vscode/);
    }
    const io = capturedIo();
    expect(await main(['help', 'nope'], io)).toBe(2);
  });

  it('a command table can be extended; a failure at run time exits 1', async () => {
    const boom: CliCommand = {
      name: 'boom',
      summary: 'fails',
      usage: 'boom',
      flags: [],
      positionals: { min: 0, max: 0 },
      run: async () => {
        throw new Error('upstream unreachable');
      },
    };
    const io = capturedIo();
    expect(await main(['boom'], io, [...COMMANDS, boom])).toBe(1);
    expect(io.err()).toBe('error: upstream unreachable\n');
  });
});

describe('parseArgs', () => {
  const specs: FlagSpec[] = [
    { name: 'server', short: 's', type: 'string', description: 'server' },
    { name: 'verbose', short: 'v', type: 'boolean', description: 'more output' },
    { name: 'mode', type: 'string', values: ['a', 'b'], description: 'mode' },
  ];

  it('parses long, short, = and boolean forms, and stops at --', () => {
    expect(parseArgs(['f', '--server', 'x', '-v', '--mode=b', '--', '--not-a-flag'], specs)).toEqual({
      positionals: ['f', '--not-a-flag'],
      flags: { server: 'x', verbose: true, mode: 'b' },
    });
    expect(parseArgs(['-s', '-1', '-'], specs)).toEqual({ positionals: ['-'], flags: { server: '-1' } });
  });

  it.each([
    [['--nope'], 'unknown option --nope'],
    [['-x'], 'unknown option -x'],
    [['--server'], 'option --server needs a value'],
    [['--server', '--verbose'], 'option --server needs a value'],
    [['--verbose=yes'], 'option --verbose takes no value'],
    [['-s', 'a', '--server', 'b'], 'option --server is given twice'],
    [['--mode', 'c'], 'option --mode must be one of a, b'],
  ])('%j → UsageError(%s)', (argv, message) => {
    expect(() => parseArgs(argv, specs)).toThrow(new UsageError(message));
  });
});
