import type { Config } from '../config.ts';

/** A model endpoint users can pick. `baseUrl: null` is the built-in local-echo model. */
export interface ModelPreset {
  id: string;
  name: string;
  model: string;
  baseUrl: string | null;
  apiKey?: string;
}

export const LOCAL_ECHO: ModelPreset = {
  id: 'local-echo',
  name: 'local-echo (built-in, for trying Parley out: echoes the prompt, no model involved)',
  model: 'local-echo',
  baseUrl: null,
};

export interface ModelPresets {
  all: ModelPreset[];
  default: ModelPreset;
  find(id: string): ModelPreset | undefined;
}

/** LLM_API_URL/LLM_MODEL form the default preset, LLM_PRESETS add more; local-echo is always there. */
export function modelPresets(config: Config): ModelPresets {
  const all: ModelPreset[] = [];
  if (config.LLM_API_URL && config.LLM_MODEL) {
    all.push({ id: 'default', name: `Default (${config.LLM_MODEL})`, model: config.LLM_MODEL, baseUrl: config.LLM_API_URL, apiKey: config.LLM_API_KEY });
  }
  all.push(...config.LLM_PRESETS);
  all.push(LOCAL_ECHO);
  const byId = new Map(all.map((p) => [p.id, p]));
  return { all, default: all[0]!, find: (id) => byId.get(id) };
}
