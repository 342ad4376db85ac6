import { loadConfig } from '../config/app-config.js';
import { ApiKeyService, hashSecret } from './api-key.service.js';

describe(ApiKeyService.name, () => {
  const config = loadConfig({
    API_KEYS: JSON.stringify([
      { id: 'reader', hash: hashSecret('s3cret-reader'), scopes: ['recipes:read'] },
      { id: 'admin', hash: hashSecret('s3cret-admin'), scopes: ['ops:admin', 'ops:read'] },
    ]),
  });
  const service = new ApiKeyService(config);

  it('finds the key whose hash matches the presented secret', () => {
    expect(service.authenticate('s3cret-admin')?.id).toBe('admin');
    expect([...(service.authenticate('s3cret-reader')?.scopes ?? [])]).toEqual(['recipes:read']);
  });

  it.each(['', 's3cret', 'S3CRET-ADMIN', 's3cret-admin '])('rejects %j', (secret) => {
    expect(service.authenticate(secret)).toBeNull();
  });

  describe('dashboard sessions', () => {
    const admin = service.authenticate('s3cret-admin')!;
    const now = 1_800_000_000_000;

    it('a token verifies to its key until it expires', () => {
      const token = service.issueSession(admin, 60_000, now);
      expect(token).not.toContain('s3cret');
      expect(service.verifySession(token, now + 59_999)?.id).toBe('admin');
      expect([...service.verifySession(token, now)!.scopes]).toEqual(['ops:admin', 'ops:read']);
      expect(service.verifySession(token, now + 60_000)).toBeNull();
    });

    it('a token edited to another key or a later expiry does not verify', () => {
      const [, expires, mac] = service.issueSession(admin, 60_000, now).split('.');
      expect(service.verifySession(`reader.${expires}.${mac}`, now)).toBeNull();
      expect(service.verifySession(`admin.${Number(expires) + 1}.${mac}`, now)).toBeNull();
      expect(service.verifySession(`admin.${expires}.${'0'.repeat(64)}`, now)).toBeNull();
      expect(service.verifySession('garbage', now)).toBeNull();
    });

    it('ends when the key is removed or rotated', () => {
      const token = service.issueSession(admin, 60_000, now);
      const rotated = new ApiKeyService(
        loadConfig({
          API_KEYS: JSON.stringify([
            { id: 'admin', hash: hashSecret('new-secret'), scopes: ['ops:read'] },
          ]),
        }),
      );
      expect(rotated.verifySession(token, now)).toBeNull();
      const removed = new ApiKeyService(loadConfig({ API_KEYS: '[]' }));
      expect(removed.verifySession(token, now)).toBeNull();
    });
  });

  it('hashes with SHA-256 hex', () => {
    expect(hashSecret('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});
