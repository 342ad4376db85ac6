export const API_SCOPES = [
  'recipes:read',
  'recipes:write',
  'users:read',
  'users:write',
  'gdpr:export',
  'gdpr:erase',
  'consent:write',
  'audit:read',
  'backup:admin',
  'ops:read',
  'ops:admin',
] as const;

export type ApiScope = (typeof API_SCOPES)[number];
