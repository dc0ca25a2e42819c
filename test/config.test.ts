import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('configuration', () => {
  it('has working defaults: SQLite, port 4000, GraphiQL on in development', () => {
    expect(loadConfig({})).toMatchObject({ PORT: 4000, DATABASE_URL: 'file:./data/parley.db', GRAPHIQL: true, MIGRATE_ON_START: true, MAX_CONTENT_CHARS: 100_000 });
    expect(loadConfig({}).AUTH_JWT_SECRET).toBeUndefined();
  });

  it('turns GraphiQL off in production unless asked for', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).GRAPHIQL).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', GRAPHIQL: 'true' }).GRAPHIQL).toBe(true);
  });

  it('treats empty variables as unset', () => {
    const config = loadConfig({ PORT: '', AUTH_JWT_SECRET: '' });
    expect(config.PORT).toBe(4000);
    expect(config.AUTH_JWT_SECRET).toBeUndefined();
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mongodb://x'],
    ['AUTH_JWT_SECRET', 'too-short'],
    ['LOG_LEVEL', 'verbose'],
    ['MIGRATE_ON_START', 'maybe'],
    ['MAX_CONTENT_CHARS', '0'],
    ['DATABASE_POOL_SIZE', '1.5'],
    ['EVENT_LOG_MAX_EVENTS', '0'],
    ['EVENT_LOG_MAX_EVENTS', '1e9'],
    ['EVENT_LOG_TTL_S', '-1'],
    ['EVENT_LOG_TTL_S', 'hour'],
    ['EVENT_SWEEP_MS', '50'],
    ['EVENT_SWEEP_MS', '1.5'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^Invalid configuration:\\n  - ${name}: `));
  });

  it('reports every bad variable at once', () => {
    const error = (() => {
      try {
        loadConfig({ PORT: 'x', LOG_LEVEL: 'y' });
      } catch (e) {
        return e as ConfigError;
      }
    })();
    expect(error?.problems.map((p) => p.split(':')[0])).toEqual(['PORT', 'LOG_LEVEL']);
  });

  it('refuses an LLM_PRESETS id that would collide with a preset Parley makes itself', () => {
    const preset = (id: string) => JSON.stringify([{ id, name: id, baseUrl: 'http://127.0.0.1:9/v1', model: 'm' }]);
    expect(() => loadConfig({ LLM_API_URL: 'http://127.0.0.1:9/v1', LLM_MODEL: 'm', LLM_PRESETS: preset('default') })).toThrow(/LLM_PRESETS\.0\.id: "default" is the preset made from LLM_API_URL/);
    expect(() => loadConfig({ LLM_PRESETS: preset('local-echo') })).toThrow(/LLM_PRESETS\.0\.id: "local-echo" is the built-in/);
    // Without LLM_API_URL there is no preset called default: the id is free.
    expect(loadConfig({ LLM_PRESETS: preset('default') }).LLM_PRESETS.map((p) => p.id)).toEqual(['default']);
  });

  it('reads CORS_ORIGINS as origins spelled as browsers send them, or *', () => {
    expect(loadConfig({}).CORS_ORIGINS).toBeUndefined();
    expect(loadConfig({ CORS_ORIGINS: ' * ' }).CORS_ORIGINS).toBe('*');
    expect(loadConfig({ CORS_ORIGINS: 'https://App.Example.com, http://localhost:5173,https://x.example:443' }).CORS_ORIGINS).toEqual([
      'https://app.example.com',
      'http://localhost:5173',
      'https://x.example',
    ]);
  });

  it.each(['https://app.example.com/', 'https://app.example.com/path', 'app.example.com', 'https://a.example,*', 'https://user@a.example', 'mailto://x', 'https://a.example?x=1'])(
    'refuses CORS_ORIGINS=%s',
    (value) => {
      expect(() => loadConfig({ CORS_ORIGINS: value })).toThrow(/^Invalid configuration:\n {2}- CORS_ORIGINS: /);
    },
  );

  it('reads ALLOWED_HOSTS as host names without port', () => {
    expect(loadConfig({}).ALLOWED_HOSTS).toBeUndefined();
    expect(loadConfig({ ALLOWED_HOSTS: 'Parley.LAN., 192.168.1.20, [fd00::1]' }).ALLOWED_HOSTS).toEqual(['parley.lan', '192.168.1.20', 'fd00::1']);
    for (const value of ['parley.lan:4000', 'http://parley.lan', 'a b']) {
      expect(() => loadConfig({ ALLOWED_HOSTS: value }), value).toThrow(/^Invalid configuration:\n {2}- ALLOWED_HOSTS: /);
    }
  });
});
