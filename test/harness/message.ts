/**
 * A message split at the first empty line: header fields (with their folded lines) and the body
 * bytes. Works on latin1 text, where one character is one byte, so indexes are byte offsets.
 */
export interface MessageParts {
  /** Each field as it appears, continuation lines included, line ends normalized to LF, no final LF. */
  fields: string[];
  body: Buffer;
}

export function splitMessage(message: Buffer): MessageParts {
  const text = message.toString('latin1');
  const match = /\r?\n\r?\n/.exec(text);
  const headerEnd = match === null ? text.length : match.index;
  const bodyStart = match === null ? text.length : match.index + match[0].length;
  const fields: string[] = [];
  for (const line of text.slice(0, headerEnd).split(/\r?\n/)) {
    if (/^[ \t]/.test(line) && fields.length > 0) fields[fields.length - 1] += `\n${line}`;
    else fields.push(line);
  }
  return { fields, body: message.subarray(bodyStart) };
}

/** The field name of a header field, e.g. "Received". */
export function fieldName(field: string): string {
  return field.slice(0, field.indexOf(':'));
}
