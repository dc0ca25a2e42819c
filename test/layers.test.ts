// The layering rules of src/ (scripts/check-layers.ts), and proof on small fixture trees that the
// check finds each kind of violation and nothing in a clean tree.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLayers, extractImports, type Violation } from '../scripts/check-layers.ts';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const temp = mkdtempSync(path.join(tmpdir(), 'parley-layers-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

let fixtures = 0;
/** A project tree in a temp dir: file paths relative to its root, and their contents. */
function fixture(files: Record<string, string>): string {
  const root = path.join(temp, `fixture-${++fixtures}`);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content);
  }
  return root;
}

const messages = (violations: Violation[]) => violations.map((v) => v.message);
const ofKind = (violations: Violation[], kind: Violation['kind']) => violations.filter((v) => v.kind === kind);

// One module per layer and the generated files, each importing only what it may.
const cleanTree: Record<string, string> = {
  'src/server/main.ts': `import { buildSchema } from '../graphql/index.ts';\nimport { config } from '../config.ts';\nexport const main = () => buildSchema(config);\n`,
  'src/graphql/index.ts': [
    `import type { PrismaTypes } from '../generated/pothos-types.ts';`,
    `import type { PrismaClient } from '../generated/prisma/sqlite/client.ts';`,
    `import {`,
    `  send,`,
    `  type Sent,`,
    `} from '../chat/send.ts';`,
    `export { send };`,
    `export type { Sent, PrismaTypes, PrismaClient };`,
    `export const buildSchema = (c: unknown) => c;`,
    `// Words about imports in comments and strings are not imports:`,
    `// import { main } from '../server/main.ts';`,
    `/* const lazy = await import('../server/main.ts'); */`,
    `export const text = "import { main } from '../server/main.ts'";`,
    "export const tpl = `see import('../server/main.ts') and ${text}`;",
    `export const re = /import\\('..\\/server\\/main.ts'\\)/;`,
    ``,
  ].join('\n'),
  'src/chat/send.ts': `import { store } from '../store/messages.ts';\nimport type { Viewer } from '../auth.ts';\nexport type Sent = Viewer;\nexport const send = async () => (await import('../streaming/events.ts')).publish(store);\n`,
  'src/auth.ts': `import { AppError } from './errors.ts';\nexport type Viewer = { id: string };\nexport const fail = () => new AppError();\n`,
  'src/store/messages.ts': `import type { PrismaTypes } from '../generated/pothos-types.ts';\nexport * from '../generated/prisma/sqlite/client.ts';\nimport { logger } from '../logger.ts';\nexport const store = { logger } as unknown as PrismaTypes;\n`,
  'src/streaming/events.ts': `export { logger } from '../logger.ts';\nexport const publish = (x: unknown) => x;\n`,
  'src/cache/history.ts': `import '../streaming/events.ts';\nexport const cache = 1;\n`,
  'src/llm/client.ts': `import { config } from '../config.ts';\nexport const model = config;\n`,
  'src/config.ts': `export const config = {};\n`,
  'src/logger.ts': `import { config } from './config.ts';\nexport const logger = config;\n`,
  'src/errors.ts': `export class AppError extends Error {}\n`,
  'src/model.ts': `import type { PrismaClient } from './generated/prisma/sqlite/client.ts';\nexport type Db = PrismaClient;\n`,
  'src/redis.ts': `import { logger } from './logger.ts';\nexport const redis = logger;\n`,
  // Generated files are not checked, whatever they import.
  'src/generated/pothos-types.ts': `import type { PrismaClient } from './prisma/sqlite/client.ts';\nimport '../server/main.ts';\nexport type PrismaTypes = PrismaClient;\n`,
  'src/generated/prisma/sqlite/client.ts': `import '../../server/main.ts';\nexport class PrismaClient {}\n`,
};

describe('layering of src/', () => {
  it('has no violations', () => {
    // Expected to fail while src/ is being moved to the target layout: the list says what is left.
    expect(messages(checkLayers(projectRoot))).toEqual([]);
  });
});

describe('the layering check', () => {
  it('reports nothing for a clean tree, comments and strings included', () => {
    expect(messages(checkLayers(fixture(cleanTree)))).toEqual([]);
  });

  it('reports an upward import', () => {
    const root = fixture({ ...cleanTree, 'src/store/bad.ts': `import { send } from '../chat/send.ts';\nexport const x = send;\n` });
    const found = checkLayers(root);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ kind: 'upward-import', file: 'src/store/bad.ts', line: 1, target: 'src/chat/send.ts' });
    expect(found[0]!.message).toContain('(adapters) imports src/chat/send.ts (domain)');
  });

  it('reports a type-only upward import', () => {
    const root = fixture({ ...cleanTree, 'src/config.ts': `\nimport type { Viewer } from './auth.ts';\nexport const config = {} as Viewer;\n` });
    const found = checkLayers(root);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({ kind: 'upward-import', file: 'src/config.ts', line: 2, target: 'src/auth.ts' });
    expect(found[0]!.message).toContain('(import type)');
  });

  it('reports an upward dynamic import and an upward type reference through import()', () => {
    const root = fixture({
      ...cleanTree,
      'src/llm/client.ts': `export const load = async () => (await import(\n  '../server/main.ts'\n)).main;\nexport type S = import("../graphql/index.ts").Sent;\n`,
    });
    const found = checkLayers(root);
    expect(found.map((v) => [v.kind, v.target])).toEqual([
      ['upward-import', 'src/server/main.ts'],
      ['upward-import', 'src/graphql/index.ts'],
    ]);
    expect(found.every((v) => v.message.includes('(dynamic import)'))).toBe(true);
  });

  it('reports an upward import with a multi-line import list, and an upward re-export', () => {
    const root = fixture({
      ...cleanTree,
      'src/cache/history.ts': [
        `import {`,
        `  send,`,
        `  // a comment inside the list`,
        `  type Sent as S,`,
        `}`,
        `  from`,
        `  '../chat/send.ts';`,
        `export type * from '../auth.ts';`,
        `export const cache = send as unknown as S;`,
      ].join('\n'),
    });
    const found = checkLayers(root);
    expect(found.map((v) => [v.kind, v.file, v.line, v.target])).toEqual([
      ['upward-import', 'src/cache/history.ts', 1, 'src/chat/send.ts'],
      ['upward-import', 'src/cache/history.ts', 8, 'src/auth.ts'],
    ]);
    expect(found[1]!.message).toContain('(export type from)');
  });

  it('reports a cycle of three once, as a path', () => {
    const root = fixture({
      ...cleanTree,
      'src/services/a.ts': `import { b } from './b.ts';\nexport const a = () => b;\n`,
      'src/services/b.ts': `import type { C } from './c.ts';\nexport const b = 1 as unknown as C;\n`,
      'src/services/c.ts': `export type C = number;\nexport const c = () => import('./a.ts');\n`,
    });
    const found = checkLayers(root);
    expect(found).toHaveLength(1);
    expect(found[0]).toMatchObject({
      kind: 'circular-import',
      cycle: ['src/services/a.ts', 'src/services/b.ts', 'src/services/c.ts', 'src/services/a.ts'],
      message: 'circular import: src/services/a.ts → src/services/b.ts → src/services/c.ts → src/services/a.ts',
    });
  });

  it('reports each cycle of a tangle once, and a module importing itself', () => {
    const root = fixture({
      ...cleanTree,
      // x ⇄ y and x → y → z → x share x and y: two cycles in one component.
      'src/store/x.ts': `import './y.ts';\nexport {};\n`,
      'src/store/y.ts': `import './x.ts';\nimport './z.ts';\nexport {};\n`,
      'src/store/z.ts': `import './x.ts';\nexport {};\n`,
      'src/llm/self.ts': `export type T = import('./self.ts').U;\nexport type U = number;\n`,
    });
    expect(messages(checkLayers(root))).toEqual([
      'circular import: src/llm/self.ts → src/llm/self.ts',
      'circular import: src/store/x.ts → src/store/y.ts → src/store/x.ts',
      'circular import: src/store/x.ts → src/store/y.ts → src/store/z.ts → src/store/x.ts',
    ]);
  });

  it('reports unassigned modules, even ones nothing imports', () => {
    const root = fixture({
      ...cleanTree,
      'src/db/client.ts': `import { config } from '../config.ts';\nexport const db = config;\n`,
      'src/util.ts': `export const util = 1;\n`,
    });
    const found = checkLayers(root);
    expect(found.map((v) => [v.kind, v.file])).toEqual([
      ['unassigned-module', 'src/db/client.ts'],
      ['unassigned-module', 'src/util.ts'],
    ]);
    expect(found[0]!.message).toContain('unassigned module: src/db/client.ts is in no layer');
  });

  it('reports forbidden imports of generated code', () => {
    const root = fixture({
      ...cleanTree,
      'src/services/chat.ts': `import { PrismaClient } from '../generated/prisma/sqlite/client.ts';\nexport const db = new PrismaClient();\n`,
      'src/model.ts': `import type { PrismaClient } from './generated/prisma/sqlite/client.ts';\nimport type { PrismaTypes } from './generated/pothos-types.ts';\nexport type Db = PrismaClient | PrismaTypes;\n`,
      'src/streaming/events.ts': `export const publish = async () => import('../generated/prisma/sqlite/client.ts');\n`,
    });
    expect(ofKind(checkLayers(root), 'generated-import').map((v) => [v.file, v.target])).toEqual([
      ['src/model.ts', 'src/generated/pothos-types.ts'],
      ['src/services/chat.ts', 'src/generated/prisma/sqlite/client.ts'],
      ['src/streaming/events.ts', 'src/generated/prisma/sqlite/client.ts'],
    ]);
  });

  it('reports an import that names no file', () => {
    const root = fixture({ ...cleanTree, 'src/errors.ts': `import './gone.ts';\nexport class AppError extends Error {}\n` });
    expect(messages(checkLayers(root))).toEqual([`unresolved import: src/errors.ts:1 imports './gone.ts', which names no file`]);
  });

  it('runs from the command line, exiting 1 with the list of violations', async () => {
    const run = promisify(execFile);
    const cli = ['--import', 'tsx', path.join(projectRoot, 'scripts/check-layers.ts')];
    const clean = await run(process.execPath, [...cli, fixture(cleanTree)]);
    expect(clean.stdout).toContain('check-layers: no violations');
    const bad = fixture({ ...cleanTree, 'src/util.ts': `import { main } from './server/main.ts';\nexport const u = main;\n` });
    const failed = await run(process.execPath, [...cli, bad]).then(
      () => ({ code: 0, stderr: '' }),
      (e: { code: number; stderr: string }) => e,
    );
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain('check-layers: 1 violation');
    expect(failed.stderr).toContain('unassigned module: src/util.ts');
  });
});

describe('import extraction', () => {
  it('finds every form of import and only those', () => {
    const source = [
      `#!/usr/bin/env node`,
      `import a from './a.ts';`,
      `import * as b from "./b.ts";`,
      `import c, { d } from './c.ts';`,
      `import type { E } from './e.ts';`,
      `import './side.ts';`,
      `import f = require('./f.ts');`,
      `export * from './g.ts';`,
      `export * as h from './h.ts';`,
      `export { i as j } from './i.ts';`,
      `export type { K } from './k.ts';`,
      'const l = await import(`./l.ts`);',
      `const m = await import('./m.ts', { with: { type: 'json' } });`,
      'const notLiteral = await import(`./${a}.ts`);',
      `const n = 10 / 2; const o = /'\\/p.ts'/g; // import q from './q.ts'`,
      `const from = 'x'; export const r = { import: './r.ts', from: './s.ts' };`,
    ].join('\n');
    expect(extractImports(source).map((r) => [r.line, r.kind, r.specifier])).toEqual([
      [2, 'import', './a.ts'],
      [3, 'import', './b.ts'],
      [4, 'import', './c.ts'],
      [5, 'import type', './e.ts'],
      [6, 'side-effect import', './side.ts'],
      [7, 'require', './f.ts'],
      [8, 'export from', './g.ts'],
      [9, 'export from', './h.ts'],
      [10, 'export from', './i.ts'],
      [11, 'export type from', './k.ts'],
      [12, 'dynamic import', './l.ts'],
      [13, 'dynamic import', './m.ts'],
    ]);
  });
});
