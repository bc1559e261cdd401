/**
 * The rules of `blackpony check-postfix` on postconf output written out here: the layouts the
 * real-Postfix test does not start (postscreen behind blackpony, the simple mode over SMTP,
 * master_service_disable), and postconf output that is not postconf's.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/daemon/config.js';
import { checkPostfix, type Finding } from '../../src/daemon/postfix-check.js';
import { PostconfParseError, PostfixSettings } from '../../src/daemon/postfix-settings.js';

const PARAMETERS = {
  queue_directory: '/var/spool/postfix',
  inet_interfaces: 'all',
  mynetworks: '127.0.0.0/8 [::1]/128',
  smtpd_authorized_xclient_hosts: '',
  smtpd_upstream_proxy_protocol: '',
  postscreen_upstream_proxy_protocol: '',
  master_service_disable: '',
  transport_maps: '',
  default_transport: 'smtp',
  relayhost: '',
  enable_long_queue_ids: 'yes',
  default_destination_recipient_limit: '50',
};

function settings(parameters: Record<string, string>, services: string[], overrides: string[] = []): PostfixSettings {
  return PostfixSettings.parse({
    parameters: Object.entries({ ...PARAMETERS, ...parameters })
      .map(([name, value]) => `${name} = ${value}`)
      .join('\n'),
    services: services.join('\n'),
    overrides: overrides.join('\n'),
  });
}

function check(postfix: PostfixSettings, config: string): Finding[] {
  return checkPostfix(postfix, parseConfig(`hostname: mx.example.org\nkeys: /etc/blackpony/keys\n${config}`), { postconf: 'postconf' });
}

const problems = (findings: Finding[]): string[] =>
  findings.filter((finding) => finding.severity === 'problem').map((finding) => `${finding.topic}: ${finding.text}`);

describe('check-postfix rules', () => {
  const postscreen = ['127.0.0.1:10025 inet n - n - 1 postscreen', 'smtpd pass - - n - - smtpd', 'smtp inet n - y - - smtpd', 'blackpony unix - - n - - smtp'];
  const postscreenOverrides = ['127.0.0.1:10025/inet/postscreen_upstream_proxy_protocol = haproxy', 'blackpony/unix/smtp_send_xforward_command = yes'];
  const postscreenConfig =
    'inbound: {listen: systemd, postfix: "127.0.0.1:10025", client_identity: proxy}\n' + 'outbound: {listen: "127.0.0.1:10587", protocol: smtp}\n';

  it('passes postscreen behind blackpony with the simple mode over SMTP, the smtp/inet line disabled by master_service_disable', () => {
    const postfix = settings(
      { master_service_disable: 'smtp.inet', default_transport: 'blackpony:[127.0.0.1]:10587', blackpony_destination_recipient_limit: '1' },
      postscreen,
      postscreenOverrides,
    );
    const findings = check(postfix, postscreenConfig);
    expect(problems(findings)).toEqual([]);
    // The loopback TCP leg is a documented trade-off, not a problem.
    expect(findings.map((finding) => finding.severity)).toEqual(['note']);
  });

  it('finds the same layout broken: port 25 enabled, no smtpd pass, more than one recipient per transaction', () => {
    const postfix = settings(
      { default_transport: 'blackpony:[127.0.0.1]:10587' },
      postscreen.filter((line) => !line.startsWith('smtpd pass')),
      postscreenOverrides,
    );
    expect(problems(check(postfix, postscreenConfig))).toEqual([
      expect.stringMatching(/^port 25: master\.cf service smtp\/inet \(smtpd\) still listens on port 25/),
      expect.stringMatching(/^client identity: postscreen \(127\.0\.0\.1:10025\/inet\) has no `smtpd pass` service/),
      expect.stringMatching(/^mynetworks: 127\.0\.0\.0\/8 trusts blackpony's own loopback address/),
      expect.stringMatching(/^transport: blackpony_destination_recipient_limit is 50, not 1/),
    ]);
  });

  it('finds a relay listener bound beyond loopback and an lmtp transport for an smtp blackpony', () => {
    const postfix = settings(
      { default_transport: 'lmtp:inet:[127.0.0.1]:10587' },
      ['10025 inet n - n - - smtpd', 'lmtp unix - - n - - lmtp'],
      ['10025/inet/smtpd_authorized_xclient_hosts = 127.0.0.1', 'lmtp/unix/lmtp_send_xforward_command = yes'],
    );
    expect(
      problems(check(postfix, 'inbound: {listen: "0.0.0.0:25", postfix: "127.0.0.1:10025"}\noutbound: {listen: "127.0.0.1:10587", protocol: smtp}\n')),
    ).toEqual([
      expect.stringMatching(/^relay listener: master\.cf service 10025\/inet .* listens on all, beyond loopback/),
      'transport: master.cf service lmtp/unix runs lmtp, but blackpony speaks smtp (outbound.protocol): make it smtp',
    ]);
  });

  it('checks nothing of the inbound side when it is disabled; relayhost through smtp leads to blackpony', () => {
    const postfix = settings(
      { relayhost: '[127.0.0.1]:10587', smtp_destination_recipient_limit: '1' },
      ['smtp inet n - y - - smtpd', 'smtp unix - - y - - smtp'],
      ['smtp/unix/smtp_send_xforward_command = yes'],
    );
    expect(check(postfix, 'inbound: {enabled: false}\noutbound: {listen: "127.0.0.1:10587", protocol: smtp}\n')).toEqual([]);
  });

  it('with socket-activated outbound and lookup, checks against what the shipped socket units bind', () => {
    const services = ['blackpony unix - - n - - lmtp'];
    const overrides = ['blackpony/unix/lmtp_send_xforward_command = yes'];
    const config = 'inbound: {enabled: false}\noutbound: {listen: systemd, transport_lookup: {listen: systemd}}\n';
    const good = settings({ transport_maps: 'socketmap:inet:127.0.0.1:10588:transport', blackpony_destination_recipient_limit: '1' }, services, overrides);
    expect(problems(check(good, config))).toEqual([]);
    const elsewhere = settings({ transport_maps: 'socketmap:inet:127.0.0.1:10599:transport' }, services, overrides);
    expect(problems(check(elsewhere, config))).toEqual([
      expect.stringMatching(/^transport: transport_maps does not ask blackpony's lookup \(outbound\.transport_lookup\.listen 127\.0\.0\.1:10588\)/),
    ]);
  });

  it("refuses output that is not postconf's", () => {
    expect(() => PostfixSettings.parse({ parameters: 'no equals sign', services: '', overrides: '' })).toThrow(PostconfParseError);
    expect(() => PostfixSettings.parse({ parameters: '', services: 'smtp inet n', overrides: '' })).toThrow(/postconf -M: not a master\.cf service/);
  });
});
