/** The dashboard's login cookie: HttpOnly, SameSite=Strict, path /dashboard. */
export const DASHBOARD_COOKIE = 'dbu_session';

/** One cookie's value from a Cookie header (null when absent). */
export function readCookie(header: string | undefined, name: string): string | null {
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      try {
        return decodeURIComponent(part.slice(eq + 1).trim());
      } catch {
        return null; // malformed escape: treated as no cookie
      }
    }
  }
  return null;
}

/** Set-Cookie for the session (`secure` behind HTTPS), or its removal when `value` is null. */
export function sessionCookie(
  value: string | null,
  maxAgeSeconds: number,
  secure: boolean,
): string {
  return [
    `${DASHBOARD_COOKIE}=${value === null ? '' : encodeURIComponent(value)}`,
    'Path=/dashboard',
    `Max-Age=${value === null ? 0 : maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}
