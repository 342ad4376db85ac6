import { Body, Controller, Get, Headers, Param, Post, Put, Res } from '@nestjs/common';
import { parseIfMatch, tagged, versionedAnswer } from '../common/conditional.js';
import { UuidParamPipe } from '../common/params.js';
import type { FastifyReply } from 'fastify';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiIfMatch,
  ApiIfNoneMatch,
  ApiUuidParam,
  ETAG_HEADER,
  ApiV1Controller,
  ApiWrite,
  LOCATION_HEADER,
} from '../common/openapi.decorators.js';
import { RequireScopes } from '../security/auth.decorators.js';
import {
  CreateUserDto,
  ProfileResponseDto,
  PutProfileDto,
  PutTasteProfileDto,
  TasteProfileResponseDto,
  UserResponseDto,
} from './dto/user.dto.js';
import { UsersService } from './users.service.js';

const uuid = new UuidParamPipe();

@ApiTags('users')
@ApiV1Controller()
@Controller({ path: 'users', version: '1' })
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Create a user (409 when the email exists)' })
  @ApiCreatedResponse({ type: UserResponseDto, headers: LOCATION_HEADER })
  @ApiWrite()
  async create(
    @Body() dto: CreateUserDto,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<UserResponseDto> {
    const user = await this.users.create(dto);
    void reply.header('location', `/v1/users/${user.id}`);
    return user;
  }

  @Get(':id')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'The user' })
  @ApiOkResponse({ type: UserResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  get(@Param('id', uuid) id: string): Promise<UserResponseDto> {
    return this.users.get(id);
  }

  @Get(':id/profile')
  @RequireScopes('users:read')
  @ApiOperation({
    summary: 'Profile (write-through cached; ETag = version, 0 before the first write)',
  })
  @ApiOkResponse({ type: ProfileResponseDto, headers: ETAG_HEADER })
  @ApiIfNoneMatch()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async getProfile(
    @Param('id', uuid) id: string,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProfileResponseDto | Response> {
    return versionedAnswer(reply, await this.users.getProfile(id), ifNoneMatch);
  }

  @Put(':id/profile')
  @RequireScopes('users:write')
  @ApiOperation({
    summary:
      'Replace the profile (write-through cached); If-Match with the version (0: none yet) or * (one must exist), else 412',
  })
  @ApiOkResponse({ type: ProfileResponseDto, headers: ETAG_HEADER })
  @ApiIfMatch()
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async putProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutProfileDto,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<ProfileResponseDto> {
    return tagged(reply, await this.users.putProfile(id, dto, parseIfMatch(ifMatch)));
  }

  @Get(':id/taste-profile')
  @RequireScopes('users:read')
  @ApiOperation({
    summary: 'Taste profile (write-through cached; ETag = version, 0 before the first write)',
  })
  @ApiOkResponse({ type: TasteProfileResponseDto, headers: ETAG_HEADER })
  @ApiIfNoneMatch()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async getTasteProfile(
    @Param('id', uuid) id: string,
    @Headers('if-none-match') ifNoneMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<TasteProfileResponseDto | Response> {
    return versionedAnswer(reply, await this.users.getTasteProfile(id), ifNoneMatch);
  }

  @Put(':id/taste-profile')
  @RequireScopes('users:write')
  @ApiOperation({
    summary: 'Replace the taste profile (write-through cached); If-Match as for the profile',
  })
  @ApiOkResponse({ type: TasteProfileResponseDto, headers: ETAG_HEADER })
  @ApiIfMatch()
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  async putTasteProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutTasteProfileDto,
    @Headers('if-match') ifMatch: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<TasteProfileResponseDto> {
    return tagged(reply, await this.users.putTasteProfile(id, dto, parseIfMatch(ifMatch)));
  }
}
