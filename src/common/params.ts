import { ArgumentMetadata, Injectable, PipeTransform } from '@nestjs/common';
import { isUUID } from 'class-validator';
import { invalidRequest } from './errors.js';

/** A path or query parameter that must be a UUID: a 400 naming the parameter otherwise. */
@Injectable()
export class UuidParamPipe implements PipeTransform<string, string> {
  constructor(private readonly version?: '4') {}

  transform(value: string, meta: ArgumentMetadata): string {
    const name = meta.data ?? 'id';
    if (!isUUID(value, this.version)) {
      throw invalidRequest({
        field: name,
        message: `${name} must be a UUID${this.version ? ` (version ${this.version})` : ''}`,
      });
    }
    return value;
  }
}

/** A path or query parameter that must be a whole number: a 400 naming the parameter otherwise. */
@Injectable()
export class IntParamPipe implements PipeTransform<string, number> {
  transform(value: string, meta: ArgumentMetadata): number {
    const name = meta.data ?? 'id';
    if (!/^-?\d{1,15}$/.test(value)) {
      throw invalidRequest({ field: name, message: `${name} must be an integer` });
    }
    return Number(value);
  }
}
