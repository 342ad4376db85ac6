import { Body, Controller, Get, Param, Post, Put, Res } from '@nestjs/common';
import { UuidParamPipe } from '../common/params.js';
import type { FastifyReply } from 'fastify';
import { ApiCreatedResponse, ApiOkResponse, ApiOperation, ApiTags } from '@nestjs/swagger';
import {
  ApiErrorResponses,
  ApiUuidParam,
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
  @ApiOperation({ summary: 'Profile (write-through cached)' })
  @ApiOkResponse({ type: ProfileResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getProfile(@Param('id', uuid) id: string): Promise<ProfileResponseDto> {
    return this.users.getProfile(id);
  }

  @Put(':id/profile')
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Replace the profile (write-through cached)' })
  @ApiOkResponse({ type: ProfileResponseDto })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  putProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutProfileDto,
  ): Promise<ProfileResponseDto> {
    return this.users.putProfile(id, dto);
  }

  @Get(':id/taste-profile')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'Taste profile (write-through cached)' })
  @ApiOkResponse({ type: TasteProfileResponseDto })
  @ApiUuidParam()
  @ApiErrorResponses(404)
  getTasteProfile(@Param('id', uuid) id: string): Promise<TasteProfileResponseDto> {
    return this.users.getTasteProfile(id);
  }

  @Put(':id/taste-profile')
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Replace the taste profile (write-through cached)' })
  @ApiOkResponse({ type: TasteProfileResponseDto })
  @ApiWrite()
  @ApiUuidParam()
  @ApiErrorResponses(404)
  putTasteProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutTasteProfileDto,
  ): Promise<TasteProfileResponseDto> {
    return this.users.putTasteProfile(id, dto);
  }
}
