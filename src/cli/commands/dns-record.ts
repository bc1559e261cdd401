import { base64 } from '@scure/base';
import { Command, InvalidArgumentError, Option } from 'commander';
import { normalizeDomain } from '../../crypto/domain-name.js';
import { loadKeyFile } from '../../crypto/keyfile.js';
import { DEFAULT_TTL, MAX_MAX_AGE, serializePonyRecord, zoneFileLine, type PonyPolicy } from '../../crypto/pony-record.js';
import { PONY_KEY_FIELD } from '../../outbound/mta-sts-policy.js';
import { failCommand } from '../fail.js';

const MAX_TTL = 2 ** 31 - 1;

/** A parser for whole seconds from 0 to `max`, whose error names the range. */
function wholeSeconds(max: number): (text: string) => number {
  return (text) => {
    const seconds = /^[0-9]{1,16}$/.test(text) ? Number(text) : NaN;
    if (!(seconds <= max)) throw new InvalidArgumentError(`expected whole seconds from 0 to ${max}`);
    return seconds;
  };
}

interface DnsRecordOptions {
  key: string;
  nextKey?: string;
  domain: string;
  policy: PonyPolicy;
  ttl: number;
  maxAge?: number;
  sealedRelay?: boolean;
  value?: boolean;
}

/** `blackpony dns-record --key FILE --domain D`: prints the zone-file line publishing the `_pony` record. */
export function dnsRecordCommand(): Command {
  return new Command('dns-record')
    .description("print the zone-file line of the domain's _pony TXT record, from a key file")
    .requiredOption('--key <file>', 'the key file (from blackpony keygen)')
    .requiredOption('--domain <domain>', 'the mail domain the record is for')
    .option('--next-key <file>', 'during a key rollover: the next key file, whose Noise key is published as well')
    .addOption(
      new Option('--policy <policy>', 'enforce: senders must use the tunnel; testing: they may fall back').choices(['enforce', 'testing']).default('testing'),
    )
    .addOption(new Option('--ttl <seconds>', 'the record TTL').argParser(wholeSeconds(MAX_TTL)).default(DEFAULT_TTL))
    .addOption(new Option('--max-age <seconds>', `how long senders may remember the record (at most ${MAX_MAX_AGE})`).argParser(wholeSeconds(MAX_MAX_AGE)))
    .option(
      '--sealed-relay',
      "relay=sealed: with --policy enforce, senders that reach none of the domain's blackpony MX hosts deliver the message sealed through its other MX hosts (a backup MX sees the envelope, not the content)",
    )
    .option('--value', "print only the record's text, for a DNS hosting panel's TXT value field (name: _pony)")
    .addHelpText(
      'after',
      '\nExample:\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --domain example.org --policy enforce\n' +
        '  _pony.example.org. 3600 IN TXT "v=pony1; n=...; a=age1...; p=enforce"\n' +
        '  ; if the domain has an MTA-STS policy, add to https://mta-sts.example.org/.well-known/mta-sts.txt ...:\n' +
        '  ; pony-key: ...\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --next-key /etc/blackpony/keys.next --domain example.org\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --domain example.org --policy enforce --sealed-relay\n' +
        '  _pony.example.org. 3600 IN TXT "v=pony1; n=...; a=age1...; p=enforce; relay=sealed"\n' +
        '  blackpony dns-record --key /etc/blackpony/keys --domain example.org --value\n' +
        '  v=pony1; n=...; a=age1...; p=testing',
    )
    .action(async (options: DnsRecordOptions, command: Command) => {
      try {
        const keys = await loadKeyFile(options.key);
        const noiseKeys = [keys.noise.publicKey];
        if (options.nextKey !== undefined) noiseKeys.push((await loadKeyFile(options.nextKey)).noise.publicKey);
        const record = { noiseKeys, ageRecipient: keys.ageX25519Recipient, policy: options.policy, maxAge: options.maxAge, sealedRelay: options.sealedRelay };
        const line = zoneFileLine(options.domain, record, options.ttl);
        if (options.value === true) {
          process.stdout.write(`${serializePonyRecord(record)}\n`);
          return;
        }
        // The same keys for the MTA-STS policy file, as zone-file comments: the output stays pasteable.
        const policyLines = noiseKeys.map((key) => `; ${PONY_KEY_FIELD}: ${base64.encode(key)}`);
        const where = `https://mta-sts.${normalizeDomain(options.domain) ?? options.domain}/.well-known/mta-sts.txt`;
        process.stdout.write([line, `; if the domain has an MTA-STS policy, add to ${where} (stronger evidence than DNS):`, ...policyLines, ''].join('\n'));
      } catch (error) {
        failCommand(command, 'dns-record', error);
      }
    });
}
