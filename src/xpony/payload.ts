/**
 * Handshake payloads (docs/PROTOCOL.md section 7): a sequence of type-length-value fields in
 * Noise messages 2 and 3. Unknown types are skipped so later versions can add fields.
 */
import { ENDORSEMENT_LENGTH, MAX_AGE_RECIPIENTS, MAX_ENDORSEMENTS, MAX_HOST_NAME, MAX_PAYLOAD } from './limits.js';

export const FieldType = { ageRecipient: 0x01, hostName: 0x02, endorsement: 0x03, sealedRelay: 0x04 } as const;

const PREVIOUS_KEY_LENGTH = 32;

/** A previous static key of the sender vouching for its current one (see endorsement.ts). */
export interface Endorsement {
  /** The previous Noise static public key, 32 octets. */
  previousKey: Uint8Array;
  /** HMAC-SHA256 proof, 32 octets. */
  proof: Uint8Array;
}

export interface HandshakePayload {
  /** age recipient strings the sender can open (server, message 2). */
  ageRecipients: string[];
  hostName?: string;
  /** Endorsements of the server's static key by its previous keys (message 2); absent when none. */
  endorsements?: Endorsement[];
  /**
   * The server opens mail sealed to its age recipients that reaches it through its domain's other
   * MX hosts (message 2): what `relay=sealed` says in the record, said under the static key, so a
   * sender that pinned the key may remember it where the record alone is not vouched for.
   */
  sealedRelay?: true;
}

export class PayloadError extends Error {
  override readonly name = 'PayloadError';
}

const PRINTABLE_ASCII = /^[\x21-\x7e]+$/;

export function encodePayload(payload: HandshakePayload): Uint8Array {
  const fields: Buffer[] = [];
  const add = (type: number, value: Uint8Array): void => {
    const header = Buffer.allocUnsafe(3);
    header[0] = type;
    header.writeUInt16BE(value.length, 1);
    fields.push(header, Buffer.from(value));
  };
  for (const recipient of payload.ageRecipients) add(FieldType.ageRecipient, Buffer.from(recipient, 'latin1'));
  if (payload.hostName !== undefined) add(FieldType.hostName, Buffer.from(payload.hostName, 'latin1'));
  for (const { previousKey, proof } of payload.endorsements ?? []) {
    if (previousKey.length + proof.length !== ENDORSEMENT_LENGTH || previousKey.length !== PREVIOUS_KEY_LENGTH) {
      throw new PayloadError(`payload: endorsement needs a ${PREVIOUS_KEY_LENGTH}-octet key and a ${ENDORSEMENT_LENGTH - PREVIOUS_KEY_LENGTH}-octet proof`);
    }
    add(FieldType.endorsement, Buffer.concat([previousKey, proof]));
  }
  if (payload.sealedRelay === true) add(FieldType.sealedRelay, new Uint8Array(0));
  const encoded = Buffer.concat(fields);
  checkPayload(decodePayload(encoded));
  return encoded;
}

export function decodePayload(bytes: Uint8Array): HandshakePayload {
  if (bytes.length > MAX_PAYLOAD) throw new PayloadError(`payload: ${bytes.length} octets, limit ${MAX_PAYLOAD}`);
  const view = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const payload: HandshakePayload = { ageRecipients: [] };
  let offset = 0;
  while (offset < view.length) {
    if (offset + 3 > view.length) throw new PayloadError(`payload: field header truncated at octet ${offset}`);
    const type = view[offset]!;
    const length = view.readUInt16BE(offset + 1);
    const start = offset + 3;
    if (start + length > view.length) {
      throw new PayloadError(`payload: field 0x${type.toString(16)} wants ${length} octets, ${view.length - start} left`);
    }
    const value = view.toString('latin1', start, start + length);
    offset = start + length;
    if (type === FieldType.ageRecipient) {
      payload.ageRecipients.push(value);
    } else if (type === FieldType.hostName) {
      if (payload.hostName !== undefined) throw new PayloadError('payload: host-name field repeated');
      payload.hostName = value;
    } else if (type === FieldType.endorsement) {
      if (length !== ENDORSEMENT_LENGTH) throw new PayloadError(`payload: endorsement field of ${length} octets, must be ${ENDORSEMENT_LENGTH}`);
      const field = Uint8Array.from(view.subarray(start, start + length));
      (payload.endorsements ??= []).push({ previousKey: field.slice(0, PREVIOUS_KEY_LENGTH), proof: field.slice(PREVIOUS_KEY_LENGTH) });
    } else if (type === FieldType.sealedRelay) {
      if (length !== 0) throw new PayloadError(`payload: sealed-relay field of ${length} octets, must be empty`);
      if (payload.sealedRelay === true) throw new PayloadError('payload: sealed-relay field repeated');
      payload.sealedRelay = true;
    }
  }
  checkPayload(payload);
  return payload;
}

function checkPayload(payload: HandshakePayload): void {
  if (payload.ageRecipients.length > MAX_AGE_RECIPIENTS) {
    throw new PayloadError(`payload: ${payload.ageRecipients.length} age recipients, limit ${MAX_AGE_RECIPIENTS}`);
  }
  for (const recipient of payload.ageRecipients) {
    if (!PRINTABLE_ASCII.test(recipient)) throw new PayloadError('payload: age recipient is not printable ASCII');
  }
  const host = payload.hostName;
  if (host !== undefined && (host.length === 0 || host.length > MAX_HOST_NAME || !PRINTABLE_ASCII.test(host))) {
    throw new PayloadError(`payload: host-name must be 1-${MAX_HOST_NAME} printable ASCII octets`);
  }
  const endorsements = payload.endorsements?.length ?? 0;
  if (endorsements > MAX_ENDORSEMENTS) throw new PayloadError(`payload: ${endorsements} endorsements, limit ${MAX_ENDORSEMENTS}`);
}
