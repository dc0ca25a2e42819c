// Parley's configuration: every environment variable it reads, parsed and checked once.
// A bad value stops the start with one message that lists every bad variable by name.
import ipaddr from 'ipaddr.js';
import { z } from 'zod';

export type DatabaseProvider = 'sqlite' | 'postgresql' | 'mysql';

/** Which database a DATABASE_URL names, or undefined for an unsupported scheme. */
export function databaseProvider(url: string): DatabaseProvider | undefined {
  if (url.startsWith('file:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgresql';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
  return undefined;
}

const booleanFlag = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], { error: 'must be true or false' })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

const positiveInt = (max: number) => z.coerce.number({ error: 'must be a number' }).int('must be a whole number').min(1).max(max);

const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

const presetSchema = z.object({
  id: z.string().min(1).max(191),
  name: z.string().min(1).max(255),
  baseUrl: httpUrl,
  model: z.string().min(1).max(255),
  apiKeyEnv: z.string().optional(),
});

/** LLM_ALLOWED_HOSTS: host names (lower case, no trailing dot) and networks as CIDRs. */
export interface AllowedHosts {
  names: string[];
  networks: string[];
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

// Addresses only in their usual spelling: an operator's list must read as what it allows.
const allowedHostsSchema = z.string().transform((text, ctx): AllowedHosts => {
  const allowed: AllowedHosts = { names: [], networks: [] };
  for (const raw of text.split(',')) {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1');
    if (entry === '') continue;
    if (ipaddr.IPv4.isValidFourPartDecimal(entry)) allowed.networks.push(`${entry}/32`);
    else if (ipaddr.IPv6.isValid(entry)) allowed.networks.push(`${entry}/128`);
    else if (ipaddr.IPv4.isValidCIDRFourPartDecimal(entry) || (entry.includes(':') && ipaddr.IPv6.isValidCIDR(entry))) allowed.networks.push(entry);
    else if (ipaddr.isValid(entry)) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw.trim())}: write IPv4 addresses as four decimal numbers` });
    else if (HOST_NAME.test(entry.replace(/\.$/, ''))) allowed.names.push(entry.replace(/\.$/, ''));
    else ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw.trim())} is not a host name, an IP address or a CIDR range` });
  }
  return allowed;
});

// CORS_ORIGINS: `*`, or origins exactly as a browser sends them (scheme://host[:port], no path).
const corsOriginsSchema = z.string().transform((text, ctx): '*' | string[] => {
  const entries = text.split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
  if (entries.includes('*')) {
    if (entries.length > 1) ctx.addIssue({ code: 'custom', message: '`*` allows every origin: list origins or `*`, not both' });
    return '*';
  }
  const origins: string[] = [];
  for (const entry of entries) {
    let url: URL | undefined;
    try {
      url = /^[a-z][a-z0-9+.-]*:\/\/[^/?#@]+$/i.test(entry) ? new URL(entry) : undefined;
    } catch {
      url = undefined;
    }
    // URL's origin spells it as browsers do: lower-case host, no default port.
    if (url === undefined || url.origin === 'null') ctx.addIssue({ code: 'custom', message: `${JSON.stringify(entry)} is not an origin (scheme://host[:port], no path)` });
    else origins.push(url.origin);
  }
  return origins;
});

// ALLOWED_HOSTS: names the server answers to besides loopback (Host header, any port).
const serverHostsSchema = z.string().transform((text, ctx): string[] => {
  const hosts: string[] = [];
  for (const raw of text.split(',')) {
    const entry = raw.trim().toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
    if (entry === '') continue;
    if (HOST_NAME.test(entry) || ipaddr.IPv6.isValid(entry)) hosts.push(entry);
    else ctx.addIssue({ code: 'custom', message: `${JSON.stringify(raw.trim())} is not a host name or an IP address (no port)` });
  }
  return hosts;
});

/** The 32 key bytes of CONFIG_ENCRYPTION_KEY (hex or base64), or undefined when malformed. */
export function encryptionKeyBytes(key: string): Buffer | undefined {
  const bytes = /^[0-9a-fA-F]{64}$/.test(key) ? Buffer.from(key, 'hex') : Buffer.from(key, 'base64');
  return bytes.length === 32 ? bytes : undefined;
}

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
  MAX_SUBSCRIPTIONS_PER_CONNECTION: positiveInt(100_000).default(100),
  SHUTDOWN_TIMEOUT_MS: positiveInt(600_000).default(10_000),
  // Unset: any origin with auth on, loopback origins in single-user mode (src/server/cors.ts).
  CORS_ORIGINS: corsOriginsSchema.optional(),
  ALLOWED_HOSTS: serverHostsSchema.optional(),

  REDIS_URL: z.string().regex(/^rediss?:\/\//, 'must start with redis:// or rediss://').optional(),
  REDIS_KEY_PREFIX: z.string().max(100).default('parley:'),
  REDIS_COMMAND_TIMEOUT_MS: positiveInt(60_000).default(200),
  HISTORY_CACHE_SIZE: positiveInt(1000).refine((n) => n >= 2, 'must be at least 2').default(50),
  HISTORY_CACHE_TTL_S: positiveInt(30 * 24 * 3600).default(86_400),

  LLM_API_URL: httpUrl.optional(),
  LLM_API_KEY: z.string().optional(),
  LLM_MODEL: z.string().max(255).optional(),
  LLM_PRESETS: z
    .string()
    .transform((text, ctx) => {
      try {
        return JSON.parse(text) as unknown;
      } catch {
        ctx.addIssue({ code: 'custom', message: 'must be a JSON list of presets' });
        return z.NEVER;
      }
    })
    .pipe(z.array(presetSchema, { error: 'must be a JSON list of { id, name, baseUrl, model, apiKeyEnv? }' }))
    .optional(),
  LLM_TIMEOUT_MS: positiveInt(600_000).default(30_000),
  LLM_IDLE_TIMEOUT_MS: positiveInt(600_000).default(30_000),
  // A reply is cut there (finish reason `max_reply_chars`); MySQL's MEDIUMTEXT holds 16 MiB.
  LLM_MAX_REPLY_CHARS: positiveInt(5_000_000).default(400_000),
  LLM_MAX_RETRIES: z.coerce.number({ error: 'must be a number' }).int().min(0).max(10).default(2),
  // Unset: off when auth is on (many users), on in single-user mode.
  ALLOW_CUSTOM_BASE_URL: booleanFlag.optional(),
  LLM_ALLOWED_HOSTS: allowedHostsSchema.default({ names: [], networks: [] }),
  CONFIG_ENCRYPTION_KEY: z
    .string()
    .refine((key) => encryptionKeyBytes(key) !== undefined, 'must be 32 bytes as 64 hex characters or base64')
    .optional(),

  // Per instance; sends beyond it wait for a place before their model call. 0: no limit.
  MAX_CONCURRENT_REPLIES: z.coerce.number({ error: 'must be a number' }).int().min(0).max(1_000_000).default(64),
  STREAM_FLUSH_MS: z.coerce.number({ error: 'must be a number' }).int().min(0).max(10_000).default(25),
  STREAM_LEASE_MS: positiveInt(600_000).refine((ms) => ms >= 300, 'must be at least 300').default(15_000),
  STREAM_REPLAY_TTL_S: positiveInt(30 * 24 * 3600).default(3600),
  STREAM_MAX_EVENTS: positiveInt(1_000_000).refine((n) => n >= 3, 'must be at least 3').default(10_000),
  EVENT_LOG_MAX_EVENTS: positiveInt(1_000_000).default(1000),
  EVENT_LOG_TTL_S: positiveInt(30 * 24 * 3600).default(3600),
  EVENT_SWEEP_MS: positiveInt(600_000).refine((ms) => ms >= 100, 'must be at least 100').default(5000),
});

/** Every environment variable Parley reads. */
export const CONFIG_VARIABLES = Object.keys(envSchema.shape) as (keyof typeof envSchema.shape)[];

export interface ConfiguredPreset {
  id: string;
  name: string;
  baseUrl: string;
  model: string;
  /** From the variable named by apiKeyEnv; never exposed. */
  apiKey?: string;
}

export type Config = Omit<z.output<typeof envSchema>, 'GRAPHIQL' | 'LLM_PRESETS' | 'ALLOW_CUSTOM_BASE_URL'> & {
  GRAPHIQL: boolean;
  LLM_PRESETS: ConfiguredPreset[];
  ALLOW_CUSTOM_BASE_URL: boolean;
};

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
  const problems: string[] = [];
  if (config.LLM_API_URL && !config.LLM_MODEL) problems.push('LLM_MODEL: must be set with LLM_API_URL');
  const presets = (config.LLM_PRESETS ?? []).map(({ apiKeyEnv, ...preset }, i) => {
    if (apiKeyEnv && !env[apiKeyEnv]) problems.push(`LLM_PRESETS.${i}.apiKeyEnv: the variable ${apiKeyEnv} is not set`);
    return { ...preset, apiKey: apiKeyEnv ? env[apiKeyEnv] : undefined };
  });
  const ids = presets.map((p) => p.id);
  if (new Set(ids).size !== ids.length) problems.push('LLM_PRESETS: preset ids must be unique');
  // These ids name the presets Parley makes itself; a configured one would shadow or be shadowed.
  for (const [i, id] of ids.entries()) {
    if (id === 'default' && config.LLM_API_URL) problems.push(`LLM_PRESETS.${i}.id: "default" is the preset made from LLM_API_URL and LLM_MODEL; pick another id`);
    if (id === 'local-echo') problems.push(`LLM_PRESETS.${i}.id: "local-echo" is the built-in model's id; pick another id`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    ...config,
    GRAPHIQL: config.GRAPHIQL ?? config.NODE_ENV !== 'production',
    LLM_PRESETS: presets,
    ALLOW_CUSTOM_BASE_URL: config.ALLOW_CUSTOM_BASE_URL ?? config.AUTH_JWT_SECRET === undefined,
  };
}
