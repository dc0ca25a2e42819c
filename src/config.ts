// Parley's configuration: every environment variable it reads, parsed and checked once.
// A bad value stops the start with one message that lists every bad variable by name.
import { z } from 'zod';
import { databaseProvider } from './db/provider.ts';

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], { error: 'must be true or false' })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const positiveInt = (max: number) => z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(1).max(max);

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  PORT: z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(0).max(65535).default(4000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: z
    .string()
    .default('file:./data/parley.db')
    .refine((url) => databaseProvider(url) !== undefined, 'must start with file:, postgresql://, postgres://, mysql:// or mariadb://'),
  DATABASE_POOL_SIZE: positiveInt(1000).default(10),
  MIGRATE_ON_START: booleanFlag.default(true),
  AUTH_JWT_SECRET: z
    .string()
    .min(32, 'must be at least 32 characters (256 bits) for HS256')
    .optional()
    .or(z.literal('').transform(() => undefined)),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  GRAPHIQL: booleanFlag.optional(),
  MAX_CONTENT_CHARS: positiveInt(10_000_000).default(100_000),
  MAX_BODY_BYTES: positiveInt(100 * 1024 * 1024).default(2 * 1024 * 1024),
  SHUTDOWN_TIMEOUT_MS: positiveInt(600_000).default(10_000),
});

/** Every environment variable Parley reads. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape) as (keyof typeof envSchema.shape)[];

export type Config = Omit<z.output<typeof envSchema>, 'GRAPHIQL'> & { GRAPHIQL: boolean };

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Reads the configuration from `env` (process.env by default); throws ConfigError naming every bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable counts as unset, as in most deployment tools.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((issue) => `${issue.path.join('.')}: ${issue.message}`));
  }
  const config = parsed.data;
  return { ...config, GRAPHIQL: config.GRAPHIQL ?? config.NODE_ENV !== 'production' };
}
