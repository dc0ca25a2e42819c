import type { ModelPreset as Preset } from '../../llm/presets.ts';
import type { EffectiveUserConfig } from '../../services/user-config.ts';
import { builder } from '../builder.ts';

const UserConfig = builder.objectRef<EffectiveUserConfig>('UserConfig').implement({
  description: "The viewer's model settings, defaults filled in. The API key itself is never returned.",
  fields: (t) => ({
    presetId: t.exposeString('presetId'),
    model: t.exposeString('model'),
    baseUrl: t.exposeString('baseUrl', { nullable: true, description: 'A custom OpenAI-compatible endpoint; used instead of the preset unless a message names a preset' }),
    hasApiKey: t.exposeBoolean('hasApiKey'),
    maxTokens: t.exposeInt('maxTokens'),
    temperature: t.exposeFloat('temperature'),
    systemPrompt: t.exposeString('systemPrompt', { nullable: true }),
    contextTokens: t.exposeInt('contextTokens', { description: 'Token budget of the prompt: system prompt, history and the new message' }),
  }),
});

const ModelPreset = builder.objectRef<Preset>('ModelPreset').implement({
  fields: (t) => ({
    id: t.exposeID('id'),
    name: t.exposeString('name'),
    model: t.exposeString('model'),
    baseUrl: t.exposeString('baseUrl', { nullable: true, description: 'null for the built-in local-echo model' }),
  }),
});

const UpdateUserConfigInput = builder.inputType('UpdateUserConfigInput', {
  description: 'Omitted fields stay as they are; null resets a field to its default.',
  fields: (t) => ({
    presetId: t.string(),
    model: t.string(),
    baseUrl: t.string({ description: 'http(s) URL of an OpenAI-compatible API; empty string or null removes it' }),
    apiKey: t.string({ description: 'Write-only. Stored encrypted; empty string or null removes it' }),
    maxTokens: t.int(),
    temperature: t.float(),
    systemPrompt: t.string(),
    contextTokens: t.int(),
  }),
});

builder.queryFields((t) => ({
  userConfig: t.field({
    type: UserConfig,
    resolve: (_, __, ctx) => ctx.services.userConfigs.get(ctx.viewer),
  }),
  modelPresets: t.field({
    type: [ModelPreset],
    resolve: (_, __, ctx) => ctx.services.presets.all,
  }),
}));

builder.mutationField('updateUserConfig', (t) =>
  t.field({
    type: UserConfig,
    args: { input: t.arg({ type: UpdateUserConfigInput, required: true }) },
    resolve: (_, args, ctx) => ctx.services.userConfigs.update(ctx.viewer, args.input),
  }),
);
