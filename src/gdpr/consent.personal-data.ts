import { Injectable, OnModuleInit } from '@nestjs/common';
import { PersonalDataRegistry } from '../common/personal-data.js';
import { ConsentRepository } from './consent.repository.js';

/** The consent module's personal data: the user's grant/withdrawal history. */
@Injectable()
export class ConsentPersonalData implements OnModuleInit {
  constructor(
    private readonly registry: PersonalDataRegistry,
    private readonly consents: ConsentRepository,
  ) {}

  onModuleInit(): void {
    this.registry.register({
      kind: 'consents',
      tables: [{ table: 'consent_events', userColumn: 'user_id' }],
      erasureOrder: 20,
      collect: async (m, userId) =>
        (await this.consents.historyIn(m, userId)).map((e) => ({
          purpose: e.purpose,
          policyVersion: e.policyVersion,
          granted: e.granted,
          source: e.source,
          actor: e.actor,
          occurredAt: new Date(e.occurredAt).toISOString(),
        })),
      erase: (m, userId) => this.consents.eraseUser(m, userId),
    });
  }
}
