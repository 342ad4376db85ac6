import { Global, Inject, Injectable, Module, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { BootTopology } from '../../database/boot.js';
import { BOOT_TOPOLOGY } from '../../database/database.tokens.js';
import { TopologyService } from '../../database/topology.service.js';
import { Keystore } from '../keystore/keystore.js';
import { DataKeys } from './data-keys.js';
import { KMS_PROVIDER } from './kms.js';
import { createPersonalDataCrypto } from './personal-data-crypto.js';
import type { PersonalDataCrypto } from './personal-data-crypto.js';
import { PersonalDataCipher } from './personal-data-cipher.js';

const PERSONAL_DATA_CRYPTO = Symbol('PERSONAL_DATA_CRYPTO');

@Injectable()
class CryptoLifecycle implements OnModuleInit, OnModuleDestroy {
  constructor(
    @Inject(PERSONAL_DATA_CRYPTO) private readonly crypto: PersonalDataCrypto,
    private readonly topology: TopologyService,
  ) {}

  onModuleInit(): void {
    this.topology.on((e) => {
      if (e.kind === 'writer-changed') {
        const writer = this.topology.snapshot().find((n) => n.name === e.to);
        if (writer) {
          this.crypto.keystore.retarget(writer.lastProbe.address);
        }
      }
    });
  }

  async onModuleDestroy(): Promise<void> {
    await this.crypto.close();
  }
}

/**
 * Envelope encryption for every module: the KMS provider, the keystore of wrapped
 * per-user keys, the data-key cache and the cipher for personal fields.
 */
@Global()
@Module({
  providers: [
    {
      provide: PERSONAL_DATA_CRYPTO,
      inject: [APP_CONFIG, BOOT_TOPOLOGY],
      useFactory: (config: AppConfig, topology: BootTopology) =>
        createPersonalDataCrypto(config, topology.writer.address),
    },
    {
      provide: KMS_PROVIDER,
      inject: [PERSONAL_DATA_CRYPTO],
      useFactory: (c: PersonalDataCrypto) => c.kms,
    },
    {
      provide: Keystore,
      inject: [PERSONAL_DATA_CRYPTO],
      useFactory: (c: PersonalDataCrypto) => c.keystore,
    },
    {
      provide: DataKeys,
      inject: [PERSONAL_DATA_CRYPTO],
      useFactory: (c: PersonalDataCrypto) => c.dataKeys,
    },
    {
      provide: PersonalDataCipher,
      inject: [PERSONAL_DATA_CRYPTO],
      useFactory: (c: PersonalDataCrypto) => c.cipher,
    },
    CryptoLifecycle,
  ],
  exports: [KMS_PROVIDER, Keystore, DataKeys, PersonalDataCipher],
})
export class CryptoModule {}
