// What can be checked of the deployment files without a Docker engine: the compose file parses,
// its Parley service sets only variables Parley reads, and the README documents every variable.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../src/config.ts';

describe('deployment files', () => {
  const compose = parse(readFileSync('docker-compose.yml', 'utf8'), { merge: true });

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

  it('runs two Parley replicas on PostgreSQL and Redis services behind the load balancer', () => {
    const parleys = Object.entries(compose.services as Record<string, { build?: unknown; environment: Record<string, string> }>).filter(([, s]) => s.build);
    expect(parleys.map(([name]) => name)).toEqual(['parley-1', 'parley-2']);
    for (const [, service] of parleys) {
      for (const variable of ['DATABASE_URL', 'REDIS_URL']) {
        const host = new URL(service.environment[variable]!).hostname;
        expect(Object.keys(compose.services), variable).toContain(host);
      }
      expect(service.environment.DATABASE_URL).toMatch(/^postgresql:/);
    }
    const nginx = compose.configs.nginx.content as string;
    for (const [name] of parleys) expect(nginx).toContain(`server ${name}:4000;`);
    expect(nginx).toMatch(/proxy_set_header Upgrade/);
    expect(nginx).toMatch(/proxy_buffering off/);
    expect(compose.services.lb.ports).toEqual(['4000:80']);
  });

  it('the README configuration table lists every variable', () => {
    const readme = readFileSync('README.md', 'utf8');
    for (const variable of CONFIG_VARIABLES) expect(readme, variable).toMatch(new RegExp(`^\\| \`${variable}\``, 'm'));
  });

  it('the Dockerfile builds and starts Parley the way npm start does', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    const { prestart, start } = JSON.parse(readFileSync('package.json', 'utf8')).scripts as Record<string, string>;
    expect(dockerfile).toContain(`RUN ${prestart}\n`);
    expect(dockerfile).toContain(`CMD ${JSON.stringify(start!.split(' '))}`.replace(/","/g, '", "'));
  });

  it('the Dockerfile lets its unprivileged user create the default SQLite database', () => {
    const dockerfile = readFileSync('Dockerfile', 'utf8');
    const workdir = /^WORKDIR (\S+)$/m.exec(dockerfile)?.[1];
    const user = /^USER (\S+)$/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(user).not.toBe('root');
    const file = loadConfig({}).DATABASE_URL.replace(/^file:/, '');
    const dir = path.posix.dirname(path.posix.resolve(workdir!, file));
    // The directory is made and handed to the user before the image switches to it.
    const beforeUser = dockerfile.slice(0, dockerfile.indexOf(`USER ${user}`));
    expect(beforeUser).toContain(`mkdir -p ${dir}`);
    expect(beforeUser).toMatch(new RegExp(`chown ${user}:${user} ${dir.replace(/\//g, '\\/')}`));
  });
});
