/** The message of anything thrown: an Error's own message, else the value as text. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Whether a thrown value is a system error with `code` (ENOENT, EEXIST, ...). */
export function isErrorCode(error: unknown, code: string): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}
