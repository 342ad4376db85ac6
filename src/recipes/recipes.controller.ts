import {
  Body,
  Controller,
  Delete,
  Get,
  Headers,
  HttpCode,
  Param,
  Patch,
  Post,
  Put,
  Query,
  Res,
} from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import {
  ApiCreatedResponse,
  ApiNoContentResponse,
  ApiOkResponse,
  ApiOperation,
  ApiTags,
} from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiIfMatch,
  ApiIfNoneMatch,
  ApiUuidParam,
  ApiV1Controller,
  ApiWrite,
  ETAG_HEADER,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import type { FastifyReply } from 'fastify';
import { RequireScopes } from '../security/auth.decorators.js';
import { parseIfMatch, tagged as tag, versionedAnswer } from '../common/conditional.js';
import { DomainError, ErrorCode, NotFoundError } from '../common/errors.js';
import {
  BatchUpsertRecipesDto,
  BatchUpsertResponseDto,
  CreateRecipeDto,
  ListRecipesQueryDto,
  RecipeListResponseDto,
  RecipeResponseDto,
  SetEmbeddingDto,
  UpdateRecipeDto,
} from './dto/recipe.dto.js';
import { SearchRecipesDto, SearchResponseDto, SimilarQueryDto } from './dto/search.dto.js';
import { RecipesService } from './recipes.service.js';
import { SearchService } from './search.service.js';

const uuid = new UuidParamPipe();

/** `If-Match: *` on a recipe that does not exist: RFC 9110 answers 412, not 404. */
class NoCurrentRecipeError extends DomainError {
  constructor(id: string) {
    super(ErrorCode.PreconditionFailed, `recipe ${id} does not exist (If-Match: *)`);
  }
}

/**
 * Runs a conditional write: `If-Match` with a version fails with 412 when the recipe is
 * at another one; `If-Match: *` with 412 when there is no recipe (RFC 9110 13.1.1).
 */
async function ifMatching<T>(
  id: string,
  ifMatch: string | undefined,
  write: (expectedVersion?: number) => Promise<T>,
): Promise<T> {
  const expected = parseIfMatch(ifMatch);
  if (expected !== '*') {
    return write(expected);
  }
  try {
    return await write();
  } catch (err) {
    throw err instanceof NotFoundError ? new NoCurrentRecipeError(id) : err;
  }
}

@ApiTags('recipes')
@ApiV1Controller()
@Controller({ path: 'recipes', version: '1' })
export class RecipesController {
  constructor(
    private readonly recipes: RecipesService,
    private readonly searchService: SearchService,
  ) {}

  @Post()
  @RequireScopes('recipes:write')
  @ApiOperation({ summary: 'Create a recipe (embedding optional)' })
  @ApiCreatedResponse({ type: RecipeResponseDto, headers: { ...LOCATION_HEADER, ...ETAG_HEADER } })
  @ApiWrite()
  async create(
    @Body() dto: CreateRecipeDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<RecipeResponseDto> {
    const recipe = await this.recipes.create(dto);
    void reply.status(201).header('location', `/v1/recipes/${recipe.id}`);
    return tag(reply, recipe);
  }

  @Post('batch')
  @HttpCode(200)
  @RequireScopes('recipes:write')
  @ApiOperation({ summary: 'Upsert up to 100 recipes (with embeddings) in one transaction' })
  @ApiOkResponse({ type: BatchUpsertResponseDto })
  @ApiWrite()
  batch(@Body() dto: BatchUpsertRecipesDto): Promise<BatchUpsertResponseDto> {
    return this.recipes.upsertBatch(dto);
  }

  @Post('search')
  @HttpCode(200)
  @RequireScopes('recipes:read')
  @ApiOperation({
    summary: 'Vector search by embedding, recipeId (more-like-this) or text, with filters',
  })
  @ApiOkResponse({ type: SearchResponseDto })
  @ApiErrorResponses(404)
  @ApiWrite()
  search(@Body() dto: SearchRecipesDto): Promise<SearchResponseDto> {
    return this.searchService.search(dto);
  }

  @Get()
  @RequireScopes('recipes:read')
  @ApiOperation({ summary: 'List recipes with filters and cursor paging' })
  @ApiOkResponse({ type: RecipeListResponseDto })
  list(@Query() query: ListRecipesQueryDto): Promise<RecipeListResponseDto> {
    return this.recipes.list(query);
  }

  @Get(':id')
  @RequireScopes('recipes:read')
  @ApiOperation({
    summary: 'One recipe (ETag = version; 304 when If-None-Match holds the current ETag or *)',
  })
  @ApiOkResponse({ type: RecipeResponseDto, headers: ETAG_HEADER })
  @ApiIfNoneMatch()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async get(
    @Param('id', uuid) id: string,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<RecipeResponseDto | Response> {
    return versionedAnswer(reply, await this.recipes.get(id), ifNoneMatch);
  }

  @Get(':id/similar')
  @RequireScopes('recipes:read')
  @ApiOperation({ summary: 'More like this recipe (itself excluded)' })
  @ApiOkResponse({ type: SearchResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  similar(
    @Param('id', uuid) id: string,
    @Query() query: SimilarQueryDto,
  ): Promise<SearchResponseDto> {
    return this.searchService.similar(id, query.limit, query.maxDistance);
  }

  @Patch(':id')
  @RequireScopes('recipes:write')
  @ApiOperation({
    summary:
      'Partial update; If-Match with the version prevents lost updates (412); If-Match: * needs the recipe to exist (412)',
  })
  @ApiOkResponse({ type: RecipeResponseDto, headers: ETAG_HEADER })
  @ApiIfMatch()
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async update(
    @Param('id', uuid) id: string,
    @Body() dto: UpdateRecipeDto,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<RecipeResponseDto> {
    return tag(reply, await ifMatching(id, ifMatch, (v) => this.recipes.update(id, dto, v)));
  }

  @Put(':id/embedding')
  @RequireScopes('recipes:write')
  @ApiOperation({ summary: 'Set the embedding (If-Match as for PATCH)' })
  @ApiOkResponse({ type: RecipeResponseDto, headers: ETAG_HEADER })
  @ApiIfMatch()
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async setEmbedding(
    @Param('id', uuid) id: string,
    @Body() dto: SetEmbeddingDto,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<RecipeResponseDto> {
    return tag(
      reply,
      await ifMatching(id, ifMatch, (v) => this.recipes.setEmbedding(id, dto.embedding, v)),
    );
  }

  @Delete(':id')
  @HttpCode(204)
  @RequireScopes('recipes:write')
  @ApiOperation({ summary: 'Delete a recipe (If-Match as for PATCH)' })
  @ApiNoContentResponse({ description: 'deleted' })
  @ApiIfMatch()
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async delete(
    @Param('id', uuid) id: string,
    @Headers('if-match') ifMatch: string | undefined,
  ): Promise<void> {
    await ifMatching(id, ifMatch, (v) => this.recipes.delete(id, v));
  }
}
