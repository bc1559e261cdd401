/**
 * The configuration file's schema: one table of every setting with its type, range, default and a
 * one-line description. Validation (config.ts) and the commented default configuration are both
 * generated from it, so the documentation cannot drift from what is accepted.
 */

import {
  addressRangeList,
  boolean,
  domainName,
  endpointAddress,
  endpointAddressOr,
  fileMode,
  groupName,
  integer,
  listenAddressOr,
  listenerName,
  oneOf,
  path,
  policyMap,
  resolverList,
  routeMap,
  serviceName,
  sourceAddress,
  validatingResolver,
  workerCount,
  type Report,
} from './config-values.js';
import { DEFAULT_POSTFIX_TIMEOUT_MS } from '../inbound/inbound-server.js';
import { DEFAULT_LOG_LEVEL, LOG_LEVELS, type LogLevel } from '../log.js';
import { DEFAULT_CLIENT_LIMITS, HANDSHAKE_TIMEOUT_MS, MAX_PENDING_HANDSHAKES } from '../xpony/index.js';

/** One setting. `default` is written in the file's own form and goes through `read` like user input. */
export interface Field<T> {
  readonly description: string;
  /** Absent for a required setting. */
  readonly default?: unknown;
  /** The value shown (commented out) in the default configuration when there is no default. */
  readonly example?: string;
  /** Whether the value is a filesystem path, resolved against the configuration file's folder. */
  readonly path?: boolean;
  /** Converts a YAML value; calls `report` and returns anything when it is invalid. */
  readonly read: (value: unknown, report: Report) => T;
}

/** A map of settings. An optional section without defaults is either absent or complete. */
export interface Section {
  readonly description: string;
  readonly optional?: boolean;
  readonly fields: Readonly<Record<string, Field<unknown> | Section>>;
}

/** Where state lives unless state_dir or --state-dir says otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/blackpony';

/** Why the outbound side listens on loopback only (a passed socket is checked with the same words). */
export const OPEN_RELAY = 'anyone who can reach it could relay mail through this host';
/** Why the transport lookup listens on loopback only (a passed socket is checked with the same words). */
export const LOOKUP_REVEALS = 'the answers reveal which domains this host sends mail to';

export const SCHEMA = {
  description: 'blackpony configuration',
  fields: {
    hostname: {
      description: "This host's fully qualified domain name, used in greetings, EHLO and trace headers.",
      example: 'mail.example.org',
      read: domainName,
    },
    keys: {
      description: 'The key file made by `blackpony keygen` (mode 0600). Overridable with --keys.',
      example: '/etc/blackpony/keys',
      path: true,
      read: path,
    },
    state_dir: {
      description: 'Where state lives (pinned peer keys). Overridable with --state-dir.',
      default: DEFAULT_STATE_DIR,
      path: true,
      read: path,
    },
    workers: {
      description:
        'Worker processes serving the listeners: "auto" (one per two cores, as Postfix beside it needs the others; at least 1, at most 4) or 1-64. With more than one, a primary process holds the sockets, the metrics endpoint, the counts of inbound.max_clients and inbound.limits (each connection and client counted once, as in one process) and what the workers learn of other domains (records, MTA-STS policies, XPONY sightings), hands each connection to the next worker and restarts one that dies. 1 runs everything in one process.',
      default: 'auto',
      read: workerCount,
    },
    log: {
      description: 'Logging: JSON lines on stderr.',
      fields: {
        level: {
          description: 'Least severe level written: trace, debug, info, warn, error or fatal.',
          default: DEFAULT_LOG_LEVEL,
          read: oneOf<LogLevel>(...LOG_LEVELS),
        },
        pretty: { description: 'Readable lines instead of JSON.', default: false, read: boolean },
      },
    },
    inbound: {
      description: 'Inbound: receives mail from the Internet on port 25 and hands it to Postfix.',
      fields: {
        enabled: { description: 'Whether the inbound side runs.', default: true, read: boolean },
        listen: {
          description:
            'HOST:PORT to listen on, or "systemd" for the sockets systemd passes (blackpony.socket), all but those named "outbound" and "transport-lookup" (outbound.listen, outbound.transport_lookup.listen).',
          default: '0.0.0.0:25',
          read: listenAddressOr('systemd'),
        },
        postfix: {
          description: "Postfix's smtpd that receives the mail: HOST:PORT, or unix:/PATH for a unix-socket smtpd (deploy/postfix/master.cf).",
          default: '127.0.0.1:10025',
          read: endpointAddress(),
        },
        client_identity: {
          description:
            'How Postfix learns the real client\'s address: xclient (XCLIENT command) or proxy (PROXY protocol); none: for an MTA with neither (sendmail), which then judges source_address instead (deploy/README.md, "Beside sendmail").',
          default: 'xclient',
          read: oneOf('xclient', 'proxy', 'none'),
        },
        source_address: {
          description:
            'The local IP address blackpony connects to postfix from; "": the system\'s choice. Required with client_identity none, and not 127.0.0.1 or ::1 then, which sendmail trusts to relay anywhere.',
          default: '',
          read: sourceAddress,
        },
        client_name_lookup: {
          description:
            "With xclient: tell Postfix each client's host name (PTR, confirmed by A/AAAA) as its smtpd_peername_lookup would; false: all are unknown.",
          default: true,
          read: boolean,
        },
        resolver: {
          description: 'DNS servers for client_name_lookup as IP[:PORT]; empty uses the system resolver.',
          default: [],
          read: resolverList,
        },
        max_clients: { description: 'Most simultaneous client connections.', default: 1000, read: integer(1, 100_000) },
        sealed_relay: {
          description:
            "Say in each XPONY handshake that this host opens mail sealed to it that comes through the domain's other MX hosts (a backup MX): what relay=sealed says in the _pony record (blackpony dns-record --sealed-relay), said under this host's key, so that senders who pinned it use the sealed relay too (they also need the record's tag); and offer as SIZE what Postfix's limit comes to sealed and armored, as the backup passes on the sealed form's size: Postfix judges the opened message by its own limit, and refuses a plain one over it after DATA instead of at MAIL.",
          default: false,
          read: boolean,
        },
        limits: {
          description: "Per client address, like Postfix's anvil; a client over a limit gets a 4xx reply (docs/PROTOCOL.md section 6).",
          fields: {
            connections_per_client: {
              description: "Simultaneous connections from one address (Postfix's smtpd_client_connection_count_limit); 0: no limit.",
              default: DEFAULT_CLIENT_LIMITS.connectionsPerClient,
              read: integer(0, 100_000),
            },
            connection_rate_per_client: {
              description: 'Connections from one address per minute, refused ones included (smtpd_client_connection_rate_limit); 0: no limit.',
              default: DEFAULT_CLIENT_LIMITS.connectionRatePerClient,
              read: integer(0, 1_000_000),
            },
            pending_handshakes_per_client: {
              description: `XPONY handshakes of one address in progress at once (all clients together: ${MAX_PENDING_HANDSHAKES}).`,
              default: DEFAULT_CLIENT_LIMITS.pendingHandshakesPerClient,
              read: integer(1, MAX_PENDING_HANDSHAKES),
            },
            xpony_attempts_per_connection: {
              description: 'XPONY handshakes one connection may start; later ones are refused before any key agreement.',
              default: DEFAULT_CLIENT_LIMITS.xponyAttemptsPerConnection,
              read: integer(1, 100),
            },
            handshake_message3_seconds: {
              description: `Seconds a client has to answer the XPONY challenge with its Noise message 3 (the whole handshake: ${HANDSHAKE_TIMEOUT_MS / 1000}).`,
              default: DEFAULT_CLIENT_LIMITS.message3TimeoutMs / 1000,
              read: integer(1, HANDSHAKE_TIMEOUT_MS / 1000),
            },
            ipv6_prefix_length: {
              description:
                "IPv6 clients in one network of this many bits count as one, as one host often has a whole /64 (Postfix 3.8's smtpd_client_ipv6_prefix_length); 128: each address alone.",
              default: DEFAULT_CLIENT_LIMITS.ipv6PrefixLength,
              read: integer(16, 128),
            },
            exemptions: {
              description: 'Client addresses (IP or CIDR) not counted against the per-address limits above, as Postfix exempts mynetworks.',
              default: [...DEFAULT_CLIENT_LIMITS.exemptions],
              read: addressRangeList,
            },
          },
        },
        tls: {
          description: 'Certificate and key (PEM) offered with STARTTLS to legacy clients. Optional: set both or neither.',
          optional: true,
          fields: {
            cert: { description: 'Certificate chain file.', example: '/etc/blackpony/tls/cert.pem', path: true, read: path },
            key: { description: 'Private key file.', example: '/etc/blackpony/tls/key.pem', path: true, read: path },
          },
        },
        accepted_messages: {
          description:
            "Messages accepted through tunnels with an XPONY-ID, remembered in state_dir/accepted-messages/ so that a peer's retry after a lost reply gets 250 without a second copy (docs/PROTOCOL.md section 5).",
          fields: {
            days: {
              description:
                "How long each is remembered, in days: as long as peers retry (Postfix's maximal_queue_lifetime, 5 days); 0: not at all, and XPONY-ID is not offered.",
              default: 5,
              read: integer(0, 60),
            },
            max_entries: {
              description: 'Most messages remembered at once (about 200 bytes of memory each); the oldest are forgotten first.',
              default: 100_000,
              read: integer(1, 10_000_000),
            },
          },
        },
        timeouts: {
          description: 'Timeouts in whole seconds.',
          fields: {
            idle_seconds: { description: 'Idle client connection.', default: 300, read: integer(1, 86_400) },
            postfix_seconds: { description: 'Waiting for a reply from Postfix.', default: DEFAULT_POSTFIX_TIMEOUT_MS / 1000, read: integer(1, 3600) },
          },
        },
      },
    },
    outbound: {
      description: 'Outbound: receives mail from Postfix and delivers it to other hosts.',
      fields: {
        enabled: { description: 'Whether the outbound side runs.', default: true, read: boolean },
        listen: {
          description:
            'Where Postfix relays to: HOST:PORT, loopback only as it relays to anywhere, or unix:/PATH, a socket only listen_mode and listen_group let in; or "systemd" for the socket systemd passes named "outbound" (systemd/blackpony-outbound.socket), refused unless it is loopback or a unix socket other users cannot connect to.',
          default: '127.0.0.1:10587',
          read: endpointAddressOr('systemd', OPEN_RELAY),
        },
        listen_mode: {
          description: 'With listen unix:/PATH: the socket file\'s mode, in octal ("0660": its owner and group may connect).',
          default: '0660',
          read: fileMode,
        },
        listen_group: {
          description:
            "With listen unix:/PATH: the socket file's group, e.g. postfix; \"\" leaves it as created (blackpony's group, or its folder's if setgid).",
          default: '',
          read: groupName,
        },
        listener_name: {
          description:
            'The name the outbound listener greets Postfix (or sendmail) with and gives in its EHLO reply; "": blackpony.<hostname>. Not the host\'s own name, which a smart-host client takes for a mail loop (sendmail\'s 553 5.3.5).',
          default: '',
          read: listenerName,
        },
        protocol: {
          description: 'What Postfix speaks to it: lmtp (one reply per recipient) or smtp (see deploy/postfix/outbound-smtp.cf).',
          default: 'lmtp',
          read: oneOf('lmtp', 'smtp'),
        },
        resolver: {
          description: 'DNS servers as IP[:PORT] (IPv6 with a port as [::1]:53); empty uses the system resolver.',
          default: [],
          read: resolverList,
        },
        validating_resolver: {
          description:
            'A DNSSEC-validating resolver on loopback (IP[:PORT], e.g. a local unbound) whose AD bit is trusted: a validated _pony record then ranks beside HTTPS, and DANE domains (validated TLSA) stay with Postfix; "": none, every record counts as unsigned and any TLSA record the resolver names keeps a domain with Postfix.',
          default: '',
          read: validatingResolver,
        },
        routes: {
          description: 'Static next hops: domain to HOST[:PORT] or [HOST][:PORT] (no MX lookup); "*" is a smarthost.',
          default: {},
          read: routeMap,
        },
        policies: {
          description: 'Local policy per domain, overriding DNS: enforce, testing or none.',
          default: {},
          read: policyMap,
        },
        tunnel_idle_seconds: {
          description: 'How long an idle session (tunnel or not) to a peer is kept for the next message, in seconds; 0: no reuse.',
          default: 60,
          read: integer(0, 3600),
        },
        mta_sts: { description: 'Honour MTA-STS policies of legacy hosts.', default: true, read: boolean },
        pin_max_age_days: {
          description: "How long a peer's key stays pinned after its last use when its _pony record gives no max-age, in days.",
          default: 30,
          read: integer(1, 3650),
        },
        mx_port: { description: 'Port of next hops found through MX records: 25 (other values for test networks only).', default: 25, read: integer(1, 65535) },
        connect_timeout_seconds: { description: 'Connecting to a next hop, in seconds.', default: 30, read: integer(1, 600) },
        command_timeout_seconds: {
          description: "Waiting for each reply of a next hop, in seconds (RFC 5321 4.5.3.2 asks for minutes; Postfix's smtp_data_done_timeout is 600).",
          default: 300,
          read: integer(1, 3600),
        },
        transport_lookup: {
          description:
            "Postfix's transport_maps lookup (socketmap): which recipient domains Postfix hands to blackpony; the rest stay with Postfix's own smtp.",
          fields: {
            listen: {
              description:
                'HOST:PORT of the socketmap service (loopback only, e.g. 127.0.0.1:10588), "systemd" for the socket systemd passes named "transport-lookup" (systemd/blackpony-lookup.socket), or "" for none. Postfix: transport_maps = socketmap:inet:HOST:PORT:transport',
              default: '',
              read: listenAddressOr(['', 'systemd'] as const, LOOKUP_REVEALS),
            },
            transport: {
              description: 'The master.cf service that delivers to blackpony (deploy/postfix/master.cf); answered with outbound.listen as its next hop.',
              default: 'blackpony',
              read: serviceName,
            },
            cache_seconds: {
              description: 'How long an answer is reused for a domain, in seconds (a temporary failure: at most 10).',
              default: 60,
              read: integer(0, 86_400),
            },
            timeout_seconds: {
              description: 'A domain not decided within this is answered TEMP (Postfix defers the mail and asks again).',
              default: 10,
              read: integer(1, 100),
            },
            learn_from_ehlo: {
              description: 'Probe the MX hosts of domains routed to Postfix for XPONY in EHLO (connect, EHLO, QUIT), and route them to blackpony once seen.',
              default: true,
              read: boolean,
            },
            sighting_days: {
              description: 'How long XPONY seen at a domain keeps it routed to blackpony, in days (renewed by each sighting).',
              default: 7,
              read: integer(1, 365),
            },
            reprobe_hours: { description: 'A domain probed without finding XPONY is probed again after this many hours.', default: 24, read: integer(1, 8760) },
          },
        },
      },
    },
    metrics: {
      description: 'Prometheus metrics over HTTP.',
      fields: {
        listen: {
          description: 'HOST:PORT to serve /metrics on (loopback only), or "" for none.',
          default: '127.0.0.1:9425',
          read: listenAddressOr('', 'metrics reveal who this host exchanges mail with'),
        },
      },
    },
  },
} as const satisfies Section;
