import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { SCHEMA, type Section } from '../../src/daemon/config-schema.js';
import { ConfigError, applyOverrides, defaultConfigText, loadConfig, outboundListenerName, parseConfig, type Config } from '../../src/daemon/config.js';

const MINIMAL = 'hostname: mail.example.org\nkeys: /etc/blackpony/keys\n';

/** The problems parseConfig reports for `text`, which must be rejected. */
function problems(text: string): string[] {
  try {
    parseConfig(text);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems;
  }
  throw new Error('expected the configuration to be rejected');
}

/** The minimal file plus `extra` YAML. */
function withMinimal(extra: string): string {
  return `${MINIMAL}${extra}`;
}

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('parseConfig defaults', () => {
  it('fills in every default from a two-line file', () => {
    const config = parseConfig(MINIMAL);
    expect(config).toEqual({
      hostname: 'mail.example.org',
      keys: '/etc/blackpony/keys',
      stateDir: '/var/lib/blackpony',
      workers: 'auto',
      log: { level: 'info', pretty: false },
      inbound: {
        enabled: true,
        listen: { host: '0.0.0.0', port: 25 },
        postfix: { host: '127.0.0.1', port: 10025 },
        clientIdentity: 'xclient',
        sourceAddress: '',
        clientNameLookup: true,
        resolver: [],
        maxClients: 1000,
        sealedRelay: false,
        acceptedMessages: { days: 5, maxEntries: 100_000 },
        limits: {
          connectionsPerClient: 50,
          connectionRatePerClient: 300,
          pendingHandshakesPerClient: 4,
          xponyAttemptsPerConnection: 2,
          handshakeMessage3Seconds: 10,
          ipv6PrefixLength: 84,
          exemptions: ['127.0.0.0/8', '::1'],
        },
        timeouts: { idleSeconds: 300, postfixSeconds: 120 },
      },
      outbound: {
        enabled: true,
        listen: { host: '127.0.0.1', port: 10587 },
        listenMode: 0o660,
        listenGroup: '',
        listenerName: '',
        protocol: 'lmtp',
        resolver: [],
        validatingResolver: null,
        routes: new Map(),
        policies: new Map(),
        tunnelIdleSeconds: 60,
        mtaSts: true,
        pinMaxAgeDays: 30,
        mxPort: 25,
        connectTimeoutSeconds: 30,
        commandTimeoutSeconds: 300,
        transportLookup: {
          listen: '',
          transport: 'blackpony',
          cacheSeconds: 60,
          timeoutSeconds: 10,
          learnFromEhlo: true,
          sightingDays: 7,
          reprobeHours: 24,
        },
      },
      metrics: { listen: { host: '127.0.0.1', port: 9425 } },
    } satisfies Config);
  });

  it('reads every kind of setting', () => {
    const config = parseConfig(
      withMinimal(
        [
          'log: {level: debug, pretty: true}',
          'inbound:',
          '  listen: systemd',
          '  postfix: "[::1]:10026"',
          '  client_identity: proxy',
          '  tls: {cert: /tls/cert.pem, key: /tls/key.pem}',
          '  timeouts: {idle_seconds: 10}',
          'outbound:',
          '  listen: localhost:2525',
          '  protocol: smtp',
          '  resolver: ["127.0.0.1:5353", "::1", "[::1]:53", "192.0.2.1"]',
          '  routes: {"*": "[smtp.example.net]:587", Example.COM: "mx.example.com", d.test: "[127.0.0.1]:2525"}',
          '  policies: {example.com: enforce, d.test: none}',
          'metrics: {listen: ""}',
        ].join('\n'),
      ),
    );
    expect(config.log).toEqual({ level: 'debug', pretty: true });
    expect(config.inbound.listen).toBe('systemd');
    expect(config.inbound.postfix).toEqual({ host: '::1', port: 10026 });
    expect(config.inbound.clientIdentity).toBe('proxy');
    expect(config.inbound.tls).toEqual({ cert: '/tls/cert.pem', key: '/tls/key.pem' });
    expect(config.inbound.timeouts).toEqual({ idleSeconds: 10, postfixSeconds: 120 });
    expect(config.outbound.listen).toEqual({ host: 'localhost', port: 2525 });
    expect(config.outbound.protocol).toBe('smtp');
    expect(config.outbound.resolver).toEqual(['127.0.0.1:5353', '::1', '[::1]:53', '192.0.2.1']);
    expect([...config.outbound.routes]).toEqual([
      ['*', '[smtp.example.net]:587'],
      ['example.com', 'mx.example.com'],
      ['d.test', '[127.0.0.1]:2525'],
    ]);
    expect([...config.outbound.policies]).toEqual([
      ['example.com', 'enforce'],
      ['d.test', 'none'],
    ]);
    expect(config.metrics.listen).toBe('');
  });

  it('resolves relative paths against the configuration file, and overrides against the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blackpony-config-'));
    dirs.push(dir);
    const file = join(dir, 'config.yaml');
    writeFileSync(file, 'hostname: mail.example.org\nkeys: keys\nstate_dir: ../state\ninbound: {tls: {cert: tls/c.pem, key: /abs/k.pem}}\n');
    const config = await loadConfig(file);
    expect(config.keys).toBe(join(dir, 'keys'));
    expect(config.stateDir).toBe(resolve(dir, '../state'));
    expect(config.inbound.tls).toEqual({ cert: join(dir, 'tls/c.pem'), key: '/abs/k.pem' });
    const overridden = applyOverrides(config, { keys: 'other-keys', stateDir: '/run/state' });
    expect(overridden.keys).toBe(resolve('other-keys'));
    expect(overridden.stateDir).toBe('/run/state');
    expect(overridden.inbound).toBe(config.inbound);
    expect(applyOverrides(config, {})).toEqual(config);
  });

  it('compares domains as lower-case ASCII, like the rest of blackpony', () => {
    const config = parseConfig('hostname: Mail.Example.ORG.\nkeys: /k\noutbound: {policies: {bücher.example: enforce}}\n');
    expect(config.hostname).toBe('mail.example.org');
    expect([...config.outbound.policies.keys()]).toEqual(['xn--bcher-kva.example']);
  });

  it('takes a section with nothing under it (all commented out) as its defaults', () => {
    const config = parseConfig(withMinimal('log:\n  # level: debug\ninbound:\n  tls:\n'));
    expect(config.log).toEqual({ level: 'info', pretty: false });
    expect(config.inbound.tls).toBeUndefined();
    expect(config).toEqual(parseConfig(MINIMAL));
  });

  it("derives the outbound listener's name from hostname unless it is set", () => {
    expect(outboundListenerName(parseConfig(MINIMAL))).toBe('blackpony.mail.example.org');
    expect(outboundListenerName(parseConfig(withMinimal('outbound: {listener_name: relay.example.org}\n')))).toBe('relay.example.org');
  });

  it('names a missing file', async () => {
    await expect(loadConfig('/nonexistent/blackpony.yaml')).rejects.toThrow('config: /nonexistent/blackpony.yaml: does not exist');
  });
});

describe('defaultConfigText', () => {
  const text = defaultConfigText();

  it('is rejected until hostname and keys are filled in', () => {
    expect(problems(text)).toEqual(['config: hostname: required', 'config: keys: required']);
  });

  it('parses back to the defaults once hostname and keys are filled in', () => {
    const filled = text.replace(/^# hostname: .*$/m, 'hostname: mail.example.org').replace(/^# keys: .*$/m, 'keys: /etc/blackpony/keys');
    expect(parseConfig(filled)).toEqual(parseConfig(MINIMAL));
  });

  it('documents every setting, each after its description', () => {
    const settings = (section: Section, indent: string): [string, string][] =>
      Object.entries(section.fields).flatMap(([key, node]): [string, string][] => [[indent, key], ...('fields' in node ? settings(node, `${indent}  `) : [])]);
    const all = settings(SCHEMA, '');
    expect(all.length).toBeGreaterThan(25);
    for (const [indent, key] of all) {
      expect(text, key).toMatch(new RegExp(`^${indent}# \\S.*\\n${indent}(# )?${key}:`, 'm'));
    }
  });

  it('shows a valid TLS example, commented out', () => {
    const withTls = text
      .replace(/^# hostname: .*$/m, 'hostname: mail.example.org')
      .replace(/^# keys: .*$/m, 'keys: /k')
      .replace(/^( *)# (tls:|cert:|key:)/gm, '$1$2');
    expect(parseConfig(withTls).inbound.tls).toEqual({ cert: '/etc/blackpony/tls/cert.pem', key: '/etc/blackpony/tls/key.pem' });
  });
});

describe('parseConfig rejects', () => {
  it('an empty file, naming the required settings', () => {
    expect(problems('')).toEqual(['config: hostname: required', 'config: keys: required']);
    expect(problems('# only a comment\n')).toEqual(['config: hostname: required', 'config: keys: required']);
  });

  it('a file that is not a map', () => {
    expect(problems('- a\n- b\n')).toEqual(['config: expected a map of settings, got a list']);
    expect(problems('just text\n')).toEqual(['config: expected a map of settings, got "just text"']);
  });

  it('YAML syntax errors, with their line', () => {
    expect(problems('hostname: mail.example.org\nkeys: /k\nlog:\n  level: debug\n pretty: true\n')).toEqual([
      'config: line 5, column 1: All mapping items must start at the same column',
    ]);
    expect(problems('hostname: mail.example.org\nkeys: /k\ninbound:\n  listen: [unclosed\n')).toEqual([
      'config: line 5, column 1: Flow sequence in block collection must be sufficiently indented and end with a ]',
    ]);
    expect(problems('hostname: a.example\nhostname: b.example\n')).toEqual([expect.stringMatching(/^config: line 2, column 1: Map keys must be unique/)]);
  });

  it('YAML syntax errors in a file, naming the file and the line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'blackpony-config-'));
    dirs.push(dir);
    const file = join(dir, 'blackpony.yaml');
    writeFileSync(file, 'hostname: mail.example.org\nkeys: /k\nlog:\n  level: debug\n pretty: true\n');
    await expect(loadConfig(file)).rejects.toThrow(`config: ${file}: line 5, column 1: All mapping items must start at the same column`);
  });

  it("an outbound listener name that is the host's own (a smart host greeting with it is a mail loop to sendmail)", () => {
    expect(problems(withMinimal('outbound: {listener_name: mail.example.org}\n'))).toEqual([
      'config: outbound.listener_name: expected a name other than hostname, got "mail.example.org": a smart-host client on this host (sendmail) takes its own name in the greeting for a mail loop',
    ]);
    expect(problems(withMinimal('outbound: {listener_name: "not a name"}\n'))[0]).toMatch(
      /^config: outbound.listener_name: expected a fully qualified domain name/,
    );
  });

  it('client_identity none without a source address sendmail does not trust (it relays anywhere for 127.0.0.1)', () => {
    const judged = 'the MTA behind judges this address for every client, and sendmail relays anywhere for 127.0.0.1 and ::1';
    expect(problems(withMinimal('inbound: {client_identity: none}\n'))).toEqual([
      `config: inbound.source_address: required with inbound.client_identity none, an address like 127.0.0.25: ${judged}`,
    ]);
    for (const address of ['127.0.0.1', '::1']) {
      expect(problems(withMinimal(`inbound: {client_identity: none, source_address: "${address}"}\n`))).toEqual([
        `config: inbound.source_address: expected an address other than 127.0.0.1 and ::1 with inbound.client_identity none, got "${address}": ${judged}`,
      ]);
    }
    expect(problems(withMinimal('inbound: {client_identity: none, postfix: "unix:/run/sendmail.sock"}\n'))).toEqual([
      'config: inbound.postfix: expected HOST:PORT with inbound.client_identity none, got a unix:/PATH socket, which has no source address to judge',
    ]);
    expect(problems(withMinimal('inbound: {source_address: 127.0.0.25, postfix: "unix:/run/x.sock"}\n'))).toEqual([
      'config: inbound.source_address: expected "" with a unix:/PATH inbound.postfix (a socket has no source address), got "127.0.0.25"',
    ]);
    expect(problems(withMinimal('inbound: {source_address: "127.0.0.300"}\n'))).toEqual([
      'config: inbound.source_address: expected "" or an IP address like 127.0.0.25, got "127.0.0.300"',
    ]);
    const config = parseConfig(withMinimal('inbound: {client_identity: none, source_address: 127.0.0.25, postfix: "127.0.0.1:2525"}\n'));
    expect(config.inbound).toMatchObject({ clientIdentity: 'none', sourceAddress: '127.0.0.25' });
  });

  it('unresolvable and exponential YAML aliases', () => {
    expect(problems('hostname: *nowhere\n')).toEqual([expect.stringMatching(/^config: Unresolved alias/)]);
    const laughs = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
    for (let level = 1; level < 9; level++)
      laughs.push(
        `${'abcdefghi'[level]}: &${'abcdefghi'[level]} [${Array(10)
          .fill(`*${'abcdefghi'[level - 1]}`)
          .join(', ')}]`,
      );
    expect(problems(laughs.join('\n'))).toEqual([expect.stringMatching(/^config: Excessive alias count/)]);
  });

  it('a number of workers that is not "auto" or 1-64', () => {
    for (const [value, got] of [
      ['0', '0'],
      ['65', '65'],
      ['two', '"two"'],
      ['1.5', '1.5'],
    ]) {
      expect(problems(withMinimal(`workers: ${value}\n`))).toEqual([`config: workers: expected "auto" or 1-64, got ${got}`]);
    }
    expect(parseConfig(withMinimal('workers: 3\n')).workers).toBe(3);
  });

  it('unknown settings at every depth', () => {
    expect(problems(withMinimal('colour: blue\ninbound: {prot: 25, timeouts: {idle: 3}}\noutbound: {listen_on: x}\nmetrics: {token: t}\n'))).toEqual([
      'config: colour: unknown setting',
      'config: inbound.prot: unknown setting',
      'config: inbound.timeouts.idle: unknown setting',
      'config: outbound.listen_on: unknown setting',
      'config: metrics.token: unknown setting',
    ]);
  });

  it('wrong types', () => {
    expect(problems(withMinimal('log: {pretty: "yes"}\ninbound: {enabled: 1, max_clients: "abc"}\noutbound: yes\n'))).toEqual([
      'config: log.pretty: expected true or false, got "yes"',
      'config: inbound.enabled: expected true or false, got 1',
      'config: inbound.max_clients: expected 1-100000, got "abc"',
      'config: outbound: expected a map, got "yes"',
    ]);
    expect(problems('hostname: [a]\nkeys: 7\n')).toEqual([
      'config: hostname: expected a fully qualified domain name like mail.example.org, got a list',
      'config: keys: expected a file path, got 7',
    ]);
    expect(problems(withMinimal('outbound: {resolver: 1.1.1.1, routes: [a], policies: enforce}\n'))).toEqual([
      'config: outbound.resolver: expected a list of IP[:PORT], got "1.1.1.1"',
      'config: outbound.routes: expected a map of domain to HOST[:PORT] or [HOST][:PORT], got a list',
      'config: outbound.policies: expected a map of domain to enforce, testing or none, got "enforce"',
    ]);
  });

  it('validating resolver: a loopback IP[:PORT] whose AD bit is trusted, refused elsewhere', () => {
    expect(parseConfig(withMinimal('outbound: {validating_resolver: "127.0.0.1:5353"}\n')).outbound.validatingResolver).toEqual({
      host: '127.0.0.1',
      port: 5353,
    });
    expect(parseConfig(withMinimal('outbound: {validating_resolver: "[::1]"}\n')).outbound.validatingResolver).toEqual({ host: '::1', port: 53 });
    expect(problems(withMinimal('outbound: {validating_resolver: "192.0.2.1"}\n'))).toEqual([
      'config: outbound.validating_resolver: expected a loopback IP address (127.0.0.0/8 or [::1]), got "192.0.2.1": its AD bit is trusted only on loopback, where nobody on the path can set it',
    ]);
    expect(problems(withMinimal('outbound: {validating_resolver: "localhost"}\n'))[0]).toMatch(
      /^config: outbound.validating_resolver: expected "" or a loopback IP/,
    );
  });

  it('per-client limits: values in range, exemptions as IP addresses or CIDR ranges', () => {
    const limits = parseConfig(
      withMinimal('inbound: {limits: {connections_per_client: 0, handshake_message3_seconds: 5, exemptions: ["192.0.2.0/24", "2001:db8::/32", "::1"]}}\n'),
    ).inbound.limits;
    expect(limits).toMatchObject({ connectionsPerClient: 0, handshakeMessage3Seconds: 5, exemptions: ['192.0.2.0/24', '2001:db8::/32', '::1'] });
    expect(
      problems(
        withMinimal(
          'inbound:\n  limits: {pending_handshakes_per_client: 0, xpony_attempts_per_connection: 101, handshake_message3_seconds: 31, exemptions: ["10.0.0.0/33", "mail.example.org", 7]}\n',
        ),
      ),
    ).toEqual([
      'config: inbound.limits.pending_handshakes_per_client: expected 1-256, got 0',
      'config: inbound.limits.xpony_attempts_per_connection: expected 1-100, got 101',
      'config: inbound.limits.handshake_message3_seconds: expected 1-30, got 31',
      'config: inbound.limits.exemptions.0: expected an IP address or CIDR range, got "10.0.0.0/33" (prefix length not in 0-32)',
      'config: inbound.limits.exemptions.1: expected an IP address or CIDR range, got "mail.example.org" (not an IP address or CIDR range)',
      'config: inbound.limits.exemptions.2: expected an IP address or CIDR range, got 7 (not a string)',
    ]);
  });

  it('numbers out of range, fractional or absurd', () => {
    expect(
      problems(
        withMinimal(
          'inbound: {max_clients: 0, timeouts: {idle_seconds: 1.5, postfix_seconds: 3601}}\n' +
            'outbound: {tunnel_idle_seconds: 3601, pin_max_age_days: 0, connect_timeout_seconds: .inf}\n',
        ),
      ),
    ).toEqual([
      'config: inbound.max_clients: expected 1-100000, got 0',
      'config: inbound.timeouts.idle_seconds: expected 1-86400, got 1.5',
      'config: inbound.timeouts.postfix_seconds: expected 1-3600, got 3601',
      'config: outbound.tunnel_idle_seconds: expected 0-3600, got 3601',
      'config: outbound.pin_max_age_days: expected 1-3650, got 0',
      'config: outbound.connect_timeout_seconds: expected 1-600, got Infinity',
    ]);
  });

  it('choices outside their set', () => {
    expect(
      problems(withMinimal('log: {level: verbose}\ninbound: {client_identity: header}\noutbound: {protocol: esmtp, policies: {example.com: strict}}\n')),
    ).toEqual([
      'config: log.level: expected trace, debug, info, warn, error or fatal, got "verbose"',
      'config: inbound.client_identity: expected xclient, proxy or none, got "header"',
      'config: outbound.protocol: expected lmtp or smtp, got "esmtp"',
      'config: outbound.policies.example.com: expected enforce, testing or none, got "strict"',
    ]);
  });

  it('bad hosts and ports', () => {
    const cases: [string, string][] = [
      ['abc', 'expected HOST:PORT or "systemd", got "abc" (no port)'],
      ['127.0.0.1:abc', 'expected HOST:PORT or "systemd", got "127.0.0.1:abc" (port not in 1-65535)'],
      ['127.0.0.1:0', 'expected HOST:PORT or "systemd", got "127.0.0.1:0" (port not in 1-65535)'],
      ['127.0.0.1:65536', 'expected HOST:PORT or "systemd", got "127.0.0.1:65536" (port not in 1-65535)'],
      ['::1:25', 'expected HOST:PORT or "systemd", got "::1:25" (IPv6 addresses go in brackets, like [::1]:25)'],
      ['[::1:25', 'expected HOST:PORT or "systemd", got "[::1:25" (unbalanced brackets)'],
      ['[zz::1]:25', 'expected HOST:PORT or "systemd", got "[zz::1]:25" ("zz::1" is not a hostname or IP address)'],
      ['bad_host:25', 'expected HOST:PORT or "systemd", got "bad_host:25" ("bad_host" is not a hostname or IP address)'],
      [':25', 'expected HOST:PORT or "systemd", got ":25" ("" is not a hostname or IP address)'],
      ['-a.example:25', 'expected HOST:PORT or "systemd", got "-a.example:25" ("-a.example" is not a hostname or IP address)'],
    ];
    for (const [listen, reason] of cases) {
      expect(problems(withMinimal(`inbound: {listen: "${listen}"}\n`))).toEqual([`config: inbound.listen: ${reason}`]);
    }
    expect(parseConfig(withMinimal('inbound: {listen: "[::]:25"}\n')).inbound.listen).toEqual({ host: '::', port: 25 });
    expect(parseConfig(withMinimal('inbound: {listen: "mx-1.example.org:2525"}\n')).inbound.listen).toEqual({ host: 'mx-1.example.org', port: 2525 });
    expect(problems(withMinimal('outbound: {resolver: ["dns.example:53", "1.1.1.1:99999", 5]}\n'))).toEqual([
      'config: outbound.resolver.0: expected IP[:PORT], got "dns.example:53"',
      'config: outbound.resolver.1: expected IP[:PORT], got "1.1.1.1:99999"',
      'config: outbound.resolver.2: expected IP[:PORT], got 5',
    ]);
    const routes = '{"not a domain": "mx.example:25", localhost: "mx.example", example.com: "mx.example:0"}';
    expect(problems(withMinimal(`outbound: {routes: ${routes}}\n`))).toEqual([
      'config: outbound.routes.not a domain: expected a domain name or "*" as key, got "not a domain"',
      'config: outbound.routes.localhost: expected a domain name or "*" as key, got "localhost"',
      'config: outbound.routes.example.com: expected HOST[:PORT] or [HOST][:PORT] (an IP address in brackets), got "mx.example:0": port 0 out of range 1-65535',
    ]);
    expect(problems('hostname: localhost\nkeys: /k\n')).toEqual([
      'config: hostname: expected a fully qualified domain name like mail.example.org, got "localhost"',
    ]);
  });

  it('outbound and metrics listening beyond loopback', () => {
    expect(problems(withMinimal('outbound: {listen: "0.0.0.0:10587"}\nmetrics: {listen: "[2001:db8::1]:9425"}\n'))).toEqual([
      'config: outbound.listen: expected a loopback address (127.0.0.1, [::1] or localhost), got "0.0.0.0:10587": anyone who can reach it could relay mail through this host',
      'config: metrics.listen: expected a loopback address (127.0.0.1, [::1] or localhost), got "[2001:db8::1]:9425": metrics reveal who this host exchanges mail with',
    ]);
    expect(parseConfig(withMinimal('outbound: {listen: "[::1]:10587"}\nmetrics: {listen: "127.0.0.2:9425"}\n')).outbound.listen).toEqual({
      host: '::1',
      port: 10587,
    });
  });

  it("unix sockets for both loopback legs, with the outbound socket's mode and group", () => {
    const config = parseConfig(
      withMinimal(
        'inbound: {postfix: "unix:/var/spool/postfix/public/blackpony-smtpd"}\noutbound: {listen: "unix:/run/blackpony/lmtp.sock", listen_mode: "0600", listen_group: postfix}\n',
      ),
    );
    expect(config.inbound.postfix).toEqual({ path: '/var/spool/postfix/public/blackpony-smtpd' });
    expect(config.outbound.listen).toEqual({ path: '/run/blackpony/lmtp.sock' });
    expect(config.outbound.listenMode).toBe(0o600);
    expect(config.outbound.listenGroup).toBe('postfix');
    const long = `/${'x'.repeat(107)}`;
    expect(
      problems(withMinimal(`inbound: {postfix: "unix:relative/smtpd"}\noutbound: {listen: "unix:${long}", listen_mode: 0660, listen_group: "no group"}\n`)),
    ).toEqual([
      'config: inbound.postfix: expected HOST:PORT or unix:/PATH, got "unix:relative/smtpd" (the socket path must be absolute)',
      `config: outbound.listen: expected HOST:PORT, unix:/PATH or "systemd", got "unix:/${'x'.repeat(71)}..." (the socket path is longer than 107 bytes, the limit of unix sockets)`,
      'config: outbound.listen_mode: expected a file mode in octal, quoted, like "0660", got 660',
      'config: outbound.listen_group: expected a group name or number, or "" for none, got "no group"',
    ]);
    expect(problems(withMinimal('outbound: {listen: "unix"}\n'))).toEqual([
      'config: outbound.listen: expected HOST:PORT, unix:/PATH or "systemd", got "unix" (no port)',
    ]);
  });

  it('TLS with only one of certificate and key', () => {
    expect(problems(withMinimal('inbound: {tls: {cert: /c.pem}}\n'))).toEqual(['config: inbound.tls.key: required when inbound.tls is set']);
    expect(problems(withMinimal('inbound: {tls: {key: /k.pem}}\n'))).toEqual(['config: inbound.tls.cert: required when inbound.tls is set']);
    expect(problems(withMinimal('inbound: {tls: {}}\n'))).toEqual([
      'config: inbound.tls.cert: required when inbound.tls is set',
      'config: inbound.tls.key: required when inbound.tls is set',
    ]);
    expect(problems(withMinimal('inbound: {tls: ""}\n'))).toEqual(['config: inbound.tls: expected a map, got ""']);
  });

  it('both sides disabled', () => {
    expect(problems(withMinimal('inbound: {enabled: false}\noutbound: {enabled: false}\n'))).toEqual([
      'config: inbound.enabled, outbound.enabled: expected at least one side enabled, got both false',
    ]);
    expect(parseConfig(withMinimal('inbound: {enabled: false}\n')).outbound.enabled).toBe(true);
  });

  it('reports every problem together, one per line', () => {
    const error = (() => {
      try {
        parseConfig('keys: ""\nlog: {level: 3}\ninbound: {listen: x, max_clients: 0}\noutbound: {listen: "10.0.0.1:25"}\nextra: 1\n');
      } catch (caught) {
        return caught as ConfigError;
      }
      throw new Error('expected a ConfigError');
    })();
    expect(error.problems).toEqual([
      'config: extra: unknown setting',
      'config: hostname: required',
      'config: keys: expected a file path, got ""',
      'config: log.level: expected trace, debug, info, warn, error or fatal, got 3',
      'config: inbound.listen: expected HOST:PORT or "systemd", got "x" (no port)',
      'config: inbound.max_clients: expected 1-100000, got 0',
      'config: outbound.listen: expected a loopback address (127.0.0.1, [::1] or localhost), got "10.0.0.1:25": anyone who can reach it could relay mail through this host',
    ]);
    expect(error.message).toBe(error.problems.join('\n'));
  });

  it('any text or any value in any setting: a ConfigError, never another exception', () => {
    const rejectsOnlyWithConfigError = (text: string) => {
      try {
        parseConfig(text);
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).problems.length).toBeGreaterThan(0);
        for (const problem of (error as ConfigError).problems) expect(problem).toMatch(/^config: [^\n]+$/);
      }
    };
    fc.assert(fc.property(fc.string(), rejectsOnlyWithConfigError), { numRuns: 300 });
    const section = fc.constantFrom('log', 'inbound', 'outbound', 'metrics', 'timeouts', 'tls');
    const setting = fc.constantFrom('level', 'listen', 'postfix', 'max_clients', 'resolver', 'routes', 'policies', 'cert', 'enabled', 'idle_seconds');
    fc.assert(
      fc.property(section, setting, fc.jsonValue(), (outer, inner, value) =>
        rejectsOnlyWithConfigError(`${MINIMAL}${stringify({ [outer]: { [inner]: value } })}`),
      ),
      { numRuns: 500 },
    );
  });
});
