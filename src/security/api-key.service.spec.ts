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

  it('hashes with SHA-256 hex', () => {
    expect(hashSecret('abc')).toBe(
      'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad',
    );
  });
});
