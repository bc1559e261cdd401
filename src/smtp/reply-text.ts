/**
 * Text for an SMTP reply line built from anything, an error message included (OpenSSL's span
 * lines): control characters become spaces, so the text can neither end the reply early nor
 * smuggle in another line. Other octets pass (RFC 6531 allows UTF-8 in replies).
 */
export function asReplyText(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it replaces
  return text.replace(/[\x00-\x1f\x7f]+/g, ' ').trim();
}
