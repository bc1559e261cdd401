/** RFC 3461 section 4 xtext, for ENVID and ORCPT values: "+", "=", controls, space and non-ASCII as "+HH". */
export function xtext(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte < 0x21 || byte > 0x7e || byte === 0x2b || byte === 0x3d ? `+${byte.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(byte);
  }
  return out;
}
