/**
 * A Postfix configuration as postconf(1) prints it: every main.cf parameter with its effective
 * value (`postconf -x`: defaults included, `$name` expanded), the master.cf services (`postconf
 * -M`) and their `-o` overrides (`postconf -Px`). Pure: `blackpony check-postfix` runs the
 * commands, this reads their output, and postfix-check.ts judges it.
 */

/** One master.cf service: `name type private unpriv chroot wakeup maxproc command [args]`. */
export interface MasterService {
  readonly name: string;
  /** inet, unix, unix-dgram, fifo or pass. */
  readonly type: string;
  readonly private: string;
  readonly chroot: string;
  /** The daemon it runs: smtpd, postscreen, lmtp, smtp, ... */
  readonly command: string;
}

/** `service/type`, as postconf -M and -P name a service. */
export function serviceId(service: Pick<MasterService, 'name' | 'type'>): string {
  return `${service.name}/${service.type}`;
}

export class PostconfParseError extends Error {
  override readonly name = 'PostconfParseError';
}

export class PostfixSettings {
  private constructor(
    private readonly parameters: ReadonlyMap<string, string>,
    readonly services: readonly MasterService[],
    private readonly overrides: ReadonlyMap<string, ReadonlyMap<string, string>>,
  ) {}

  /** From the output of `postconf -x`, `postconf -M` and `postconf -Px`. */
  static parse(output: { parameters: string; services: string; overrides: string }): PostfixSettings {
    const parameters = new Map<string, string>();
    for (const line of lines(output.parameters)) {
      const match = /^([A-Za-z0-9_.-]+) = ?(.*)$/.exec(line);
      if (match === null) throw new PostconfParseError(`postconf -x: not "name = value": ${JSON.stringify(line)}`);
      parameters.set(match[1]!, match[2]!);
    }
    const services = lines(output.services).map((line) => {
      const [name, type, privateColumn, , chroot, , , command] = line.split(/\s+/);
      if (command === undefined) throw new PostconfParseError(`postconf -M: not a master.cf service: ${JSON.stringify(line)}`);
      return { name: name!, type: type!, private: privateColumn!, chroot: chroot!, command };
    });
    const overrides = new Map<string, Map<string, string>>();
    for (const line of lines(output.overrides)) {
      const match = /^(.+)\/([a-z-]+)\/([A-Za-z0-9_.-]+) = ?(.*)$/.exec(line);
      if (match === null) throw new PostconfParseError(`postconf -P: not "service/type/name = value": ${JSON.stringify(line)}`);
      const id = `${match[1]}/${match[2]}`;
      const entry = overrides.get(id) ?? new Map<string, string>();
      entry.set(match[3]!, match[4]!);
      overrides.set(id, entry);
    }
    return new PostfixSettings(parameters, services, overrides);
  }

  /** A main.cf parameter's effective value; '' when postconf does not know it. */
  main(name: string): string {
    return this.parameters.get(name) ?? '';
  }

  /** A parameter as the service sees it: its `-o` override, else main.cf's value. */
  effective(service: MasterService, name: string): string {
    return this.overrideOf(service, name) ?? this.main(name);
  }

  /** The service's own `-o name=value`, if it has one. */
  overrideOf(service: MasterService, name: string): string | undefined {
    return this.overrides.get(serviceId(service))?.get(name);
  }

  /** The services master(8) runs: master_service_disable takes out `name/type`, `name.type` or a whole type. */
  activeServices(): MasterService[] {
    const disabled = new Set(postfixList(this.main('master_service_disable')));
    return this.services.filter(
      (service) => !disabled.has(service.type) && !disabled.has(serviceId(service)) && !disabled.has(`${service.name}.${service.type}`),
    );
  }

  service(name: string, type: string): MasterService | undefined {
    return this.activeServices().find((service) => service.name === name && service.type === type);
  }
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line.trim() !== '');
}

/** A Postfix list value: words separated by whitespace or commas. */
export function postfixList(value: string): string[] {
  return value.split(/[\s,]+/).filter((word) => word !== '');
}
