// What can be checked of the deployment files without a Docker engine: the compose file parses,
// its Parley service sets only variables Parley reads, and the README documents every variable.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.ts';

describe('deployment files', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'));

  it('docker-compose.yml parses and its Parley services set only known variables', () => {
    const parleyServices = Object.entries(compose.services as Record<string, { build?: unknown; environment?: Record<string, string> }>).filter(([, s]) => s.build);
    expect(parleyServices.length).toBeGreaterThan(0);
    for (const [name, service] of parleyServices) {
      const names = Object.keys(service.environment ?? {});
      expect(names, name).toContain('DATABASE_URL');
      for (const variable of names) expect(CONFIG_VARIABLES, `${name}: ${variable}`).toContain(variable);
      // With compose defaults substituted, the environment is a valid configuration.
      const env = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v).replace(/\$\{\w+:-([^}]*)\}/g, '$1')]));
      expect(() => loadConfig(env)).not.toThrow();
    }
  });

  it('the compose database URL points at a compose service', () => {
    const url = new URL(compose.services.parley.environment.DATABASE_URL);
    expect(Object.keys(compose.services)).toContain(url.hostname);
  });

  it('the README configuration table lists every variable', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const variable of CONFIG_VARIABLES) expect(readme, variable).toMatch(new RegExp(`^\\| \`${variable}\``, 'm'));
  });

  it('the Dockerfile starts the same entry point as npm start', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    const start = JSON.parse(readFileSync('package.json', 'utf8')).scripts.start as string;
    expect(dockerfile).toContain(`CMD ${JSON.stringify(start.split(' '))}`.replace(/","/g, '", "'));
  });
});
