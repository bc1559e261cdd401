/** The Noise Protocol Framework (revision 34): public API. */
export { CipherState, MAX_MESSAGE_LENGTH } from './cipher-state.js';
export { HandshakeState, type HandshakeOptions, type TransportCiphers } from './handshake-state.js';
export { parseProtocolName, type NoiseProtocol } from './protocol-name.js';
export { PATTERN_NAMES, handshakePattern, type HandshakePattern, type Token } from './patterns.js';
export { generateDhKey, prepareDhKey, DH_LENGTH, type DhKey, type DhKeyInput } from './dh.js';
export * from './errors.js';
