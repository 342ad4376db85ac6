/** The oldest TLS version any connection of the service accepts (PostgreSQL, PgBouncer, Redis). */
export const MIN_TLS_VERSION = 'TLSv1.2';
