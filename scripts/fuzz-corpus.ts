/**
 * `node dist/scripts/fuzz-corpus.js`: writes the seed corpus, test/fuzz/corpus/<target>/*, valid
 * and near-valid inputs made with the project's own serializers and the fixed keys of
 * fuzz-fixtures.ts. Run it again after a format change; sealed seeds differ on each run (age
 * picks a fresh ephemeral key), the others are the same.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { ArmorEncoder } from '../src/crypto/age/armor.js';
import { encodeHeader, encodeHeaderNoMac } from '../src/crypto/age/format.js';
import { generateHybridIdentity, identityToRecipient, sealBytes } from '../src/crypto/age/index.js';
import { serializeKeyFile, parseKeyFile } from '../src/crypto/keyfile.js';
import { defaultConfigText } from '../src/daemon/config.js';
import { FrameType, sealFrame } from '../src/xpony/frames.js';
import { encodeMessage } from '../src/xpony/handshake.js';
import { encodePayload } from '../src/xpony/payload.js';
import { createWrapStream } from '../src/xpony/sealed-message.js';
import { CLIENT_PAYLOAD, frameCipher, FUZZ_AGE_IDENTITY, FUZZ_AGE_RECIPIENT, handshakeMessages, SERVER_PAYLOAD } from './fuzz-fixtures.js';
import { CORPUS_DIR, FUZZ_TARGETS } from './fuzz-targets.js';

type Seeds = Record<string, string | Uint8Array>;

const text = (s: string): Buffer => Buffer.from(s, 'latin1');

function frames(...sent: [FrameType, string?][]): Buffer {
  const cipher = frameCipher();
  return Buffer.concat(
    sent.flatMap(([type, content]) => {
      const frame = sealFrame(cipher, type, [text(content ?? '')]);
      if (type === FrameType.rekey) cipher.rekey();
      return frame;
    }),
  );
}

function armored(data: Uint8Array): string {
  const encoder = new ArmorEncoder();
  return Buffer.concat([encoder.push(data), encoder.end()]).toString('latin1');
}

/** The sealed message for the fuzz key: wrapped and armored, or the binary age file (XPONY-BINARY). */
async function wrapped(message: string, binary = false): Promise<Buffer> {
  return buffer(Readable.from([text(message)]).pipe(createWrapStream([FUZZ_AGE_RECIPIENT], binary)) as Readable);
}

async function corpus(): Promise<Record<string, Seeds>> {
  const [message1, message2, message3] = handshakeMessages();
  const hello = sealBytes(text('Subject: hello\r\n\r\nhello\r\n'), [FUZZ_AGE_RECIPIENT]);
  const hybrid = generateHybridIdentity();
  const twoRecipients = sealBytes(text('two'), [FUZZ_AGE_RECIPIENT, identityToRecipient(hybrid)]);
  const ponyRecord = 'v=pony1; n=hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=; a=age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p';
  const noiseKey = Buffer.alloc(32, 0x51).toString('base64');
  const keyFile = `blackpony-key-file: 1\nnoise-static: ${noiseKey}\nage-x25519: ${FUZZ_AGE_IDENTITY}\nage-hybrid: ${hybrid}\n`;
  const minimalConfig = 'hostname: mail.example.org\nkeys: /etc/blackpony/keys\n';
  return {
    'xpony-message-1': { valid: encodeMessage(message1), 'with-payload': encodeMessage(Buffer.concat([message1, text('payload')])), short: 'AAAA' },
    'xpony-command': {
      valid: `1 ${encodeMessage(message1)}`,
      'version-2': `2 ${encodeMessage(message1)}`,
      'extra-part': `1 ${encodeMessage(message1)} x`,
      short: '1 AAAA',
    },
    'xpony-message-3': { valid: encodeMessage(message3), cancel: '*', 'message-1': encodeMessage(message1) },
    'noise-message-2': { valid: message2 },
    'handshake-payload': {
      server: SERVER_PAYLOAD,
      client: CLIENT_PAYLOAD,
      empty: new Uint8Array(0),
      'unknown-field': Buffer.concat([Buffer.from([0x7f, 0x00, 0x03]), text('new'), CLIENT_PAYLOAD]),
      'four-recipients': encodePayload({ ageRecipients: [FUZZ_AGE_RECIPIENT, 'a', 'b', 'c'] }),
    },
    'tunnel-frames': {
      session: frames([FrameType.data, 'EHLO client.example.test\r\n'], [FrameType.rekey], [FrameType.data, 'QUIT\r\n'], [FrameType.close]),
      'empty-data': frames([FrameType.data]),
      large: frames([FrameType.data, 'x'.repeat(1500)]),
    },
    'reply-reader': {
      greeting: '220 mx.example.test ESMTP\r\n',
      ehlo: '250-mx.example.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 XPONY 1\r\n',
      challenge: `334 ${encodeMessage(message2)}\r\n`,
      bare: '250\r\n221 2.0.0 bye\r\n',
    },
    'sealed-message': {
      sealed: await wrapped('Subject: hello\r\n\r\nhello\r\n'),
      'with-trace': Buffer.concat([text('Received: from a by b; Sun, 22 Nov 2026 00:00:00 +0000\r\n'), await wrapped('x')]),
      plain: 'Subject: plain\r\nFrom: a@example.org\r\n\r\nbody\r\n.\r\n',
      'header-only': 'X-Pony-Sealed: 1\r\n',
    },
    'bdat-command': { chunk: 'BDAT 262144', last: 'BDAT 1234 LAST', 'zero-last': 'bdat 0 last', 'over-limit': 'BDAT 262145', 'leading-zeros': 'BDAT 000100' },
    'binary-keyword': { sized: 'XPONY-BINARY 262144', unsized: 'XPONY-BINARY', small: 'xpony-binary 1000', huge: `XPONY-BINARY ${'9'.repeat(20)}` },
    'bdat-session': {
      chunks: 'BDAT 3\r\nabcBDAT 2 LAST\r\nde',
      'zero-last': 'BDAT 0 LAST\r\nQUIT\r\n',
      'rset-between': 'BDAT 4\r\nabcdRSET\r\n',
      'announced-longer': 'BDAT 100 LAST\r\nshort\r\nQUIT\r\n',
    },
    'binary-message': {
      sealed: await wrapped('Subject: hello\r\n\r\nhello\r\n', true),
      'two-chunks': await wrapped(`Subject: long\r\n\r\n${'x'.repeat(66_000)}\r\n`, true),
      armored: await wrapped('x'),
      empty: new Uint8Array(0),
    },
    'age-armor': { file: armored(hello), empty: armored(new Uint8Array(0)), crlf: armored(Buffer.alloc(100, 7)).replaceAll('\n', '\r\n') },
    'age-header': {
      file: hello,
      'two-recipients': twoRecipients,
      'full-body-line': encodeHeader(encodeHeaderNoMac([{ type: 'x', args: ['a', 'b'], body: new Uint8Array(48) }]), new Uint8Array(32)),
    },
    'age-open': { binary: hello, armored: armored(hello), empty: sealBytes(new Uint8Array(0), [FUZZ_AGE_RECIPIENT]) },
    'pony-record': {
      minimal: ponyRecord,
      full: `${ponyRecord.replace('=;', '=,3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=;')}; p=enforce; max-age=86400;`,
      'unknown-tag': `${ponyRecord};x=1\t; p = testing`,
    },
    'mta-sts-record': {
      minimal: 'v=STSv1; id=20261203T000000',
      'with-extension': 'v=STSv1 ;id=abc123; ext=value;',
      'no-id': 'v=STSv1;',
    },
    'dns-reply': {
      // Replies to queries for x.test (id 0x1234): a TXT with AD; an MX whose name points into the question; SERVFAIL.
      'txt-ad': Buffer.concat([
        Buffer.from('123481a00001000100000000017804746573740000100001', 'hex'),
        Buffer.from('c00c0010000100000e10000807762b706f6e7931', 'hex'),
      ]),
      'mx-compressed': Buffer.concat([
        Buffer.from('1234818000010001000000000178047465737400000f0001', 'hex'),
        Buffer.from('c00c000f000100000e100006000a026d78c00c', 'hex'),
      ]),
      servfail: Buffer.from('123481820001000000000000017804746573740000100001', 'hex'),
    },
    'mta-sts-policy': {
      enforce: 'version: STSv1\r\nmode: enforce\r\nmx: mail.example.org\r\nmx: *.backup.example.org\r\nmax_age: 604800\r\n',
      none: 'version: STSv1\nmode: none\nmax_age: 0\n',
      'unknown-key': 'version: STSv1\nmode: testing\nmx: mx.example.org\nmax_age: 86400\nfuture_key: x\n',
    },
    'key-file': {
      valid: keyFile,
      serialized: serializeKeyFile(parseKeyFile(keyFile), new Date(0)),
    },
    config: {
      minimal: minimalConfig,
      full: [
        minimalConfig,
        'inbound: {listen: "[::]:25", timeouts: {idle_seconds: 30}}',
        'outbound:',
        '  resolver: ["127.0.0.1:5353", "::1"]',
        '  routes: {"*": "[smtp.example.net]:587", d.test: "127.0.0.1:2525"}',
        '  policies: {example.com: enforce, d.test: none}',
        '',
      ].join('\n'),
      default: defaultConfigText().replace('# hostname:', 'hostname:').replace('# keys:', 'keys:'),
    },
  };
}

async function main(): Promise<void> {
  const seeds = await corpus();
  for (const [name, files] of Object.entries(seeds)) {
    if (!FUZZ_TARGETS.some((target) => target.name === name)) throw new Error(`fuzz-corpus: no target named ${name}`);
    const dir = join(CORPUS_DIR, name);
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), typeof content === 'string' ? text(content) : content);
    console.log(`fuzz-corpus ${name}: ${Object.keys(files).length} seeds`);
  }
}

await main();
