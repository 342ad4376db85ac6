import { Module } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { EMBEDDING_PROVIDER, EmbeddingProvider } from './embedding/embedding-provider.js';
import { OpenAiEmbeddingProvider } from './embedding/openai-embedding.provider.js';
import { RecipeReadFastPath } from './recipe-read.fast-path.js';
import { RecipesController } from './recipes.controller.js';
import { RecipesPersonalData } from './recipes.personal-data.js';
import { RecipesRepository } from './recipes.repository.js';
import { RecipesService } from './recipes.service.js';
import { RecipeWriteBehindService } from './recipe-write-behind.service.js';
import { SearchRepository } from './search.repository.js';
import { SearchMetrics } from './search.metrics.js';
import { SearchService } from './search.service.js';
import { VectorIndexService } from './vector-index.service.js';
import { VectorOpsController } from './vector-ops.controller.js';
import { WitnessService } from './witness.service.js';

@Module({
  controllers: [RecipesController, VectorOpsController],
  providers: [
    RecipeReadFastPath,
    RecipesRepository,
    RecipesService,
    RecipesPersonalData,
    RecipeWriteBehindService,
    SearchRepository,
    SearchService,
    SearchMetrics,
    VectorIndexService,
    WitnessService,
    {
      provide: EMBEDDING_PROVIDER,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig): EmbeddingProvider | null =>
        config.embeddings.provider === 'openai'
          ? new OpenAiEmbeddingProvider(config.embeddings)
          : null,
    },
  ],
  exports: [RecipesService, SearchService, RecipeWriteBehindService, RecipeReadFastPath],
})
export class RecipesModule {}
