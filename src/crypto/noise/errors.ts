/**
 * Typed errors of the Noise implementation. Every failure a peer can provoke surfaces as one of
 * these, so the tunnel can tell "the peer misbehaved" (tear the session down) from a bug.
 */
export class NoiseError extends Error {
  override readonly name: string = 'NoiseError';
}

/** The protocol name does not follow `Noise_<pattern>_<dh>_<cipher>_<hash>`. */
export class NoiseProtocolNameError extends NoiseError {
  override readonly name = 'NoiseProtocolNameError';
}

/** A well-formed protocol name that names a pattern, modifier or function this implementation lacks. */
export class NoiseUnsupportedError extends NoiseError {
  override readonly name = 'NoiseUnsupportedError';
}

/** The API was used out of order: wrong turn, after completion, after a failure, missing key. */
export class NoiseStateError extends NoiseError {
  override readonly name = 'NoiseStateError';
}

/** A message is longer than Noise's 65535-byte limit, or too short to hold what its pattern says. */
export class NoiseMessageSizeError extends NoiseError {
  override readonly name = 'NoiseMessageSizeError';
}

/** A ciphertext failed authentication: it, its nonce, key, or associated data (the handshake hash) differ. */
export class NoiseAuthenticationError extends NoiseError {
  override readonly name = 'NoiseAuthenticationError';
}

/** A cipher state used its last nonce (2^64 - 2); the session needs a new handshake. */
export class NoiseNonceExhaustedError extends NoiseError {
  override readonly name = 'NoiseNonceExhaustedError';
}

/** A key of the wrong length, or a DH with a low-order public key. */
export class NoiseKeyError extends NoiseError {
  override readonly name = 'NoiseKeyError';
}
