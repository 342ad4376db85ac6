import { Body, Controller, Get, Param, ParseUUIDPipe, Post, Put, Res } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { ApiOperation, ApiTags } from '@nestjs/swagger';
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

const uuid = new ParseUUIDPipe();

@ApiTags('users')
@Controller({ path: 'users', version: '1' })
export class UsersController {
  constructor(private readonly users: UsersService) {}

  @Post()
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Create a user (409 when the email exists)' })
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
  get(@Param('id', uuid) id: string): Promise<UserResponseDto> {
    return this.users.get(id);
  }

  @Get(':id/profile')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'Profile (write-through cached)' })
  getProfile(@Param('id', uuid) id: string): Promise<ProfileResponseDto> {
    return this.users.getProfile(id);
  }

  @Put(':id/profile')
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Replace the profile (write-through cached)' })
  putProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutProfileDto,
  ): Promise<ProfileResponseDto> {
    return this.users.putProfile(id, dto);
  }

  @Get(':id/taste-profile')
  @RequireScopes('users:read')
  @ApiOperation({ summary: 'Taste profile (write-through cached)' })
  getTasteProfile(@Param('id', uuid) id: string): Promise<TasteProfileResponseDto> {
    return this.users.getTasteProfile(id);
  }

  @Put(':id/taste-profile')
  @RequireScopes('users:write')
  @ApiOperation({ summary: 'Replace the taste profile (write-through cached)' })
  putTasteProfile(
    @Param('id', uuid) id: string,
    @Body() dto: PutTasteProfileDto,
  ): Promise<TasteProfileResponseDto> {
    return this.users.putTasteProfile(id, dto);
  }
}
