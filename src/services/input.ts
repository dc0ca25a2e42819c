import type { z } from 'zod';
import { badInput } from '../errors.ts';

/** Parses `value` with `schema`; the first problem becomes BAD_USER_INPUT naming the field under `root`. */
export function parseInput<Schema extends z.ZodType>(schema: Schema, value: unknown, root: string): z.output<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw badInput([root, ...issue.path].join('.'), issue.message);
}
