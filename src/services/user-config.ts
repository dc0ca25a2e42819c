// Per-user model settings: a preset or a custom endpoint, the model, and generation limits.
// The user's own API key is stored sealed and only ever used to call the model.
import { z } from 'zod';
import type { Viewer } from '../auth.ts';
import type { UserConfigRow } from '../store/rows.ts';
import type { Store, UserConfigChanges } from '../store/store.ts';
import { badInput } from '../errors.ts';
import type { ModelPresets } from '../llm/presets.ts';
import type { UserEndpoints } from '../llm/user-endpoints.ts';
import { parseInput, storableText } from './input.ts';
import type { SecretBox } from './secrets.ts';

export const DEFAULT_MAX_TOKENS = 1024;
export const DEFAULT_TEMPERATURE = 0.7;
export const DEFAULT_CONTEXT_TOKENS = 8192;

/** What the API shows of a user's settings, defaults filled in. */
export interface EffectiveUserConfig {
  presetId: string;
  model: string;
  baseUrl: string | null;
  hasApiKey: boolean;
  maxTokens: number;
  temperature: number;
  systemPrompt: string | null;
  contextTokens: number;
}

/** Everything needed to call the model for one reply. */
export interface ModelSettings {
  presetId: string;
  baseUrl: string | null;
  /** true: baseUrl is the user's own endpoint, not a preset's. */
  custom: boolean;
  apiKey?: string;
  model: string;
  maxTokens: number;
  temperature: number;
  systemPrompt: string | null;
  contextTokens: number;
}

export const maxTokensSchema = z.number().int().min(1, 'must be between 1 and 100000').max(100_000, 'must be between 1 and 100000');
export const temperatureSchema = z.number().min(0, 'must be between 0 and 2').max(2, 'must be between 0 and 2');
export const modelNameSchema = storableText().trim().min(1, 'must not be empty').max(255, 'must be at most 255 characters');

export interface UserConfigOptions {
  presets: ModelPresets;
  secrets?: SecretBox;
  /** How users' own endpoints are reached; undefined: custom endpoints are turned off. */
  userEndpoints: UserEndpoints | undefined;
  maxSystemPromptChars: number;
}

export class UserConfigService {
  private readonly updateSchema;

  constructor(
    private readonly store: Store,
    private readonly options: UserConfigOptions,
  ) {
    this.updateSchema = z.object({
      presetId: storableText().nullish(),
      model: modelNameSchema.nullish(),
      baseUrl: storableText()
        .trim()
        .max(2048, 'must be at most 2048 characters')
        .refine((url) => url === '' || isHttpUrl(url), 'must be an http(s) URL')
        .nullish(),
      apiKey: storableText().max(4096, 'must be at most 4096 characters').nullish(),
      maxTokens: maxTokensSchema.nullish(),
      temperature: temperatureSchema.nullish(),
      systemPrompt: storableText().max(options.maxSystemPromptChars, `must be at most ${options.maxSystemPromptChars} characters`).nullish(),
      contextTokens: z.number().int().min(256, 'must be between 256 and 2000000').max(2_000_000, 'must be between 256 and 2000000').nullish(),
    });
  }

  private row(viewer: Viewer): Promise<UserConfigRow | null> {
    return this.store.userConfig(viewer.userId);
  }

  async get(viewer: Viewer): Promise<EffectiveUserConfig> {
    return this.effective(await this.row(viewer));
  }

  private effective(row: UserConfigRow | null): EffectiveUserConfig {
    const preset = (row?.presetId && this.options.presets.find(row.presetId)) || this.options.presets.default;
    return {
      presetId: preset.id,
      model: row?.model ?? preset.model,
      baseUrl: row?.baseUrl ?? null,
      hasApiKey: Boolean(row?.apiKeyEncrypted),
      maxTokens: row?.maxTokens ?? DEFAULT_MAX_TOKENS,
      temperature: row?.temperature ?? DEFAULT_TEMPERATURE,
      systemPrompt: row?.systemPrompt ?? null,
      contextTokens: row?.contextTokens ?? DEFAULT_CONTEXT_TOKENS,
    };
  }

  async update(viewer: Viewer, rawInput: unknown): Promise<EffectiveUserConfig> {
    const input = parseInput(this.updateSchema, rawInput, 'input');
    const data: UserConfigChanges = {};
    if (input.presetId !== undefined) {
      if (input.presetId !== null && !this.options.presets.find(input.presetId)) throw badInput('input.presetId', `no preset is called ${JSON.stringify(input.presetId)}`);
      data.presetId = input.presetId;
    }
    if (input.model !== undefined) data.model = input.model;
    if (input.baseUrl !== undefined) {
      if (input.baseUrl) {
        if (!this.options.userEndpoints) throw badInput('input.baseUrl', 'custom endpoints are turned off on this server');
        // Early and clear for an address as written; names are checked at every connection.
        const refusal = this.options.userEndpoints.literalRefusal(input.baseUrl);
        if (refusal) throw badInput('input.baseUrl', `${new URL(input.baseUrl).hostname} is ${refusal}, which custom endpoints may not use`);
      }
      data.baseUrl = input.baseUrl || null;
    }
    if (input.apiKey !== undefined) {
      if (input.apiKey && !this.options.secrets) throw badInput('input.apiKey', 'this server cannot store API keys: CONFIG_ENCRYPTION_KEY is not set');
      data.apiKeyEncrypted = input.apiKey ? this.options.secrets!.seal(input.apiKey, viewer.userId) : null;
    }
    if (input.maxTokens !== undefined) data.maxTokens = input.maxTokens;
    if (input.temperature !== undefined) data.temperature = input.temperature;
    if (input.systemPrompt !== undefined) data.systemPrompt = input.systemPrompt || null;
    if (input.contextTokens !== undefined) data.contextTokens = input.contextTokens;
    const row = await this.store.saveUserConfig(viewer.userId, data);
    return this.effective(row);
  }

  /** The model settings for one reply: the user's settings, then the per-message overrides. */
  async modelSettings(viewer: Viewer, overrides: { presetId?: string | null; model?: string | null; temperature?: number | null; maxTokens?: number | null }): Promise<ModelSettings> {
    const row = await this.row(viewer);
    const effective = this.effective(row);
    let preset = this.options.presets.find(effective.presetId)!;
    if (overrides.presetId != null) {
      const chosen = this.options.presets.find(overrides.presetId);
      if (!chosen) throw badInput('input.presetId', `no preset is called ${JSON.stringify(overrides.presetId)}`);
      preset = chosen;
    }
    // A custom endpoint applies unless this message names a preset.
    const custom = overrides.presetId == null && effective.baseUrl !== null;
    const userKey = row?.apiKeyEncrypted && this.options.secrets ? this.options.secrets.open(row.apiKeyEncrypted, viewer.userId) : undefined;
    return {
      presetId: preset.id,
      baseUrl: custom ? effective.baseUrl : preset.baseUrl,
      custom,
      apiKey: userKey ?? (custom ? undefined : preset.apiKey),
      model: overrides.model ?? (overrides.presetId != null ? preset.model : effective.model),
      maxTokens: overrides.maxTokens ?? effective.maxTokens,
      temperature: overrides.temperature ?? effective.temperature,
      systemPrompt: effective.systemPrompt,
      contextTokens: effective.contextTokens,
    };
  }
}

function isHttpUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return (url.protocol === 'http:' || url.protocol === 'https:') && url.hostname !== '';
  } catch {
    return false;
  }
}
