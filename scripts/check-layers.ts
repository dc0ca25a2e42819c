// Layering check for src/: which module may import which, and no circular imports.
//
//   npm run check:layers            checks this checkout
//   tsx scripts/check-layers.ts DIR checks the project rooted at DIR (its DIR/src)
//
// test/layers.test.ts runs the same check in `npm test`.
//
// Imports are found by reading the source, not through the TypeScript compiler API (TypeScript 7
// has none): comments are blanked out, string contents are masked, and regular expressions find
// static imports (`import type` too), `export … from`, side-effect imports, `import x = require()`
// and `import('…')` / `require('…')` with a literal path. Relative specifiers are resolved to files;
// package imports are not checked.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

// ---------------------------------------------------------------------------------------------
// The rules. Paths are relative to the project root; `dir/**` is everything under dir, `*` is any
// name within one path segment, anything else is one exact file.
// ---------------------------------------------------------------------------------------------
export const RULES = {
  // Top to bottom: a module may import from its own layer or a lower one, never a higher one.
  layers: [
    { layer: 'server', files: ['src/server/**'] },
    { layer: 'graphql', files: ['src/graphql/**'] },
    { layer: 'domain', files: ['src/chat/**', 'src/services/**', 'src/auth.ts'] },
    { layer: 'adapters', files: ['src/store/**', 'src/streaming/**', 'src/cache/**', 'src/llm/**'] },
    { layer: 'base', files: ['src/config.ts', 'src/logger.ts', 'src/errors.ts', 'src/model.ts', 'src/redis.ts'] },
  ],
  // Generated code: not checked itself and not part of the cycle search. Each generated file may be
  // imported only from the modules listed for it; a generated file no entry covers from nowhere.
  generated: {
    files: ['src/generated/**'],
    importableOnlyFrom: [
      { files: ['src/generated/prisma/**'], from: ['src/store/**', 'src/model.ts', 'src/graphql/**'] },
      { files: ['src/generated/pothos-types.ts'], from: ['src/graphql/**', 'src/store/**'] },
    ],
  },
} as const;

// Any other file under src/ is an "unassigned module": new files must be placed in a layer on purpose.
const SOURCE_DIR = 'src';
const SOURCE_FILE = /\.(?:[cm]?ts|tsx)$/;
// Enough to show what to break up; a bigger tangle is reported as one group on top of these.
const MAX_CYCLES_PER_GROUP = 25;

export type ViolationKind =
  | 'upward-import'
  | 'generated-import'
  | 'unassigned-module'
  | 'circular-import'
  | 'unresolved-import'
  | 'import-outside-src';

export interface Violation {
  kind: ViolationKind;
  /** The module at fault, relative to the root, with forward slashes. */
  file: string;
  /** 1-based line of the (first) offending import, where there is one. */
  line?: number;
  /** The imported module, for import violations. */
  target?: string;
  /** For circular imports: the modules in order, the first repeated at the end. */
  cycle?: string[];
  message: string;
}

export type ImportKind = 'import' | 'import type' | 'export from' | 'export type from' | 'side-effect import' | 'dynamic import' | 'require';

export interface ImportRef {
  specifier: string;
  kind: ImportKind;
  line: number;
}

// ---------------------------------------------------------------------------------------------
// Reading imports
// ---------------------------------------------------------------------------------------------

const KEYWORDS_BEFORE_EXPRESSION = new Set([
  'return', 'typeof', 'instanceof', 'in', 'of', 'new', 'delete', 'void', 'throw', 'case', 'do', 'else', 'yield', 'await',
]);

/**
 * Blanks comments (keeping newlines, so offsets and lines stay) and masks the contents of string,
 * template and regex literals with spaces. Returns the masked text and the value of every plain
 * string literal (and every template literal without `${}`) by the offset of its opening quote.
 */
export function maskSource(source: string): { masked: string; literals: Map<number, string> } {
  const out = source.split('');
  const literals = new Map<number, string>();
  const n = source.length;
  const blank = (from: number, to: number) => {
    for (let k = from; k < to; k++) if (out[k] !== '\n' && out[k] !== '\r') out[k] = ' ';
  };
  // '{' for a plain brace, '${' for a template substitution; templates: start offset, substitution seen.
  const braces: string[] = [];
  const templates: { start: number; substituted: boolean }[] = [];
  let prev = ''; // last significant character of code
  let prevWord = ''; // the identifier or keyword that ends right before, if prev ends one
  let i = 0;
  if (source.startsWith('#!')) {
    while (i < n && source[i] !== '\n') i++;
    blank(0, i);
  }

  const scanTemplateFrom = (start: number): number => {
    // Scans template text from start (just after '`' or '}') to the closing '`' or a '${'.
    let k = start;
    while (k < n) {
      const c = source[k];
      if (c === '\\') { k += 2; continue; }
      if (c === '`') {
        blank(start, k);
        const t = templates.pop()!;
        if (!t.substituted) literals.set(t.start, source.slice(t.start + 1, k));
        return k + 1;
      }
      if (c === '$' && source[k + 1] === '{') {
        blank(start, k);
        templates[templates.length - 1]!.substituted = true;
        braces.push('${');
        return k + 2;
      }
      k++;
    }
    blank(start, n);
    return n;
  };

  while (i < n) {
    const c = source[i]!;
    const next = source[i + 1];
    if (c === '/' && next === '/') {
      const end = source.indexOf('\n', i);
      const stop = end === -1 ? n : end;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = source.indexOf('*/', i + 2);
      const stop = end === -1 ? n : end + 2;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === "'" || c === '"') {
      let k = i + 1;
      let value = '';
      while (k < n && source[k] !== c && source[k] !== '\n') {
        if (source[k] === '\\' && k + 1 < n) { value += source[k + 1]; k += 2; continue; }
        value += source[k];
        k++;
      }
      blank(i + 1, k);
      literals.set(i, value);
      i = k + 1;
      prev = c;
      prevWord = '';
      continue;
    }
    if (c === '`') {
      templates.push({ start: i, substituted: false });
      i = scanTemplateFrom(i + 1);
      prev = '`';
      prevWord = '';
      continue;
    }
    if (c === '/') {
      const regexAllowed = prev === '' || '(,=:[!&|?{};+-*%<>~^'.includes(prev) || KEYWORDS_BEFORE_EXPRESSION.has(prevWord);
      if (regexAllowed) {
        // A regex literal ends at an unescaped '/' outside a character class, on the same line.
        let k = i + 1;
        let inClass = false;
        let closed = false;
        while (k < n && source[k] !== '\n') {
          const r = source[k];
          if (r === '\\') { k += 2; continue; }
          if (r === '[') inClass = true;
          else if (r === ']') inClass = false;
          else if (r === '/' && !inClass) { closed = true; break; }
          k++;
        }
        if (closed) {
          blank(i + 1, k);
          i = k + 1;
          while (i < n && /[a-z]/i.test(source[i]!)) i++;
          prev = '/';
          prevWord = '';
          continue;
        }
      }
    }
    if (c === '{') braces.push('{');
    if (c === '}') {
      if (braces.pop() === '${') {
        i = scanTemplateFrom(i + 1);
        prev = '`';
        prevWord = '';
        continue;
      }
    }
    if (/[\w$]/.test(c)) {
      let k = i;
      while (k < n && /[\w$]/.test(source[k]!)) k++;
      prevWord = source.slice(i, k);
      prev = source[k - 1]!;
      i = k;
      continue;
    }
    if (!/\s/.test(c)) {
      prev = c;
      prevWord = '';
    }
    i++;
  }
  return { masked: out.join(''), literals };
}

// Over masked text, so nothing inside a comment or a string matches. A match ends right before
// the specifier's opening quote; the specifier is read from the literals table.
const NOT_AFTER = String.raw`(?<![\w$.])`;
const STATIC_FROM = new RegExp(String.raw`${NOT_AFTER}(import|export)(\s+type\b)?[\w$\s{},*]*?\bfrom\s*(?=['"])`, 'g');
const SIDE_EFFECT = new RegExp(String.raw`${NOT_AFTER}import\s*(?=['"])`, 'g');
const CALL = new RegExp(String.raw`${NOT_AFTER}(import|require)\s*\(\s*(?=['"\x60])`, 'g');

function lineAt(source: string, offset: number): number {
  let line = 1;
  for (let k = 0; k < offset; k++) if (source.charCodeAt(k) === 10) line++;
  return line;
}

/** Every import specifier in a TypeScript module's source, in source order. */
export function extractImports(source: string): ImportRef[] {
  const { masked, literals } = maskSource(source);
  const found: { offset: number; ref: ImportRef }[] = [];
  const add = (at: number, literalAt: number, kind: ImportKind) => {
    const specifier = literals.get(literalAt);
    if (specifier !== undefined) found.push({ offset: at, ref: { specifier, kind, line: lineAt(source, at) } });
  };
  for (const m of masked.matchAll(STATIC_FROM)) {
    const exporting = m[1] === 'export';
    const typeOnly = m[2] !== undefined;
    const kind: ImportKind = exporting ? (typeOnly ? 'export type from' : 'export from') : typeOnly ? 'import type' : 'import';
    add(m.index, m.index + m[0].length, kind);
  }
  for (const m of masked.matchAll(SIDE_EFFECT)) add(m.index, m.index + m[0].length, 'side-effect import');
  for (const m of masked.matchAll(CALL)) add(m.index, m.index + m[0].length, m[1] === 'import' ? 'dynamic import' : 'require');
  return found.sort((a, b) => a.offset - b.offset).map((f) => f.ref);
}

// ---------------------------------------------------------------------------------------------
// Files, resolution, rules
// ---------------------------------------------------------------------------------------------

function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let k = 0; k < glob.length; k++) {
    if (glob.startsWith('**', k)) { re += '.*'; k++; continue; }
    const c = glob[k]!;
    re += c === '*' ? '[^/]*' : c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

const matchers = new Map<string, RegExp>();
function matches(file: string, globs: readonly string[]): boolean {
  return globs.some((g) => {
    let re = matchers.get(g);
    if (!re) matchers.set(g, (re = globToRegExp(g)));
    return re.test(file);
  });
}

function layerIndex(file: string): number {
  return RULES.layers.findIndex((l) => matches(file, l.files));
}

const isGenerated = (file: string) => matches(file, RULES.generated.files);

function listFiles(dir: string): string[] {
  const files: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listFiles(full));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

const toPosix = (p: string) => p.split(path.sep).join('/');

function isFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

/** The file a relative specifier names, trying what TypeScript's NodeNext resolution would. */
function resolveSpecifier(fromFile: string, specifier: string): string | undefined {
  const base = path.resolve(path.dirname(fromFile), specifier.split(/[?#]/)[0]!);
  const candidates = [base];
  const js = /\.([cm]?)js(x?)$/.exec(base);
  if (js) candidates.push(base.slice(0, -js[0].length) + `.${js[1]}ts${js[2]}`);
  if (!/\.[cm]?tsx?$/.test(base)) candidates.push(`${base}.ts`, `${base}.tsx`, path.join(base, 'index.ts'), path.join(base, 'index.tsx'));
  return candidates.find(isFile);
}

interface Edge {
  from: string;
  to: string;
  line: number;
  kinds: ImportKind[];
}

const layerName = (index: number) => RULES.layers[index]!.layer;

/** All layering violations of the project rooted at `root` (its `src/`), sorted for stable output. */
export function checkLayers(root: string = process.cwd()): Violation[] {
  const srcDir = path.join(root, SOURCE_DIR);
  if (!existsSync(srcDir)) throw new Error(`check-layers: no ${SOURCE_DIR}/ under ${root}`);
  const rel = (abs: string) => toPosix(path.relative(root, abs));
  const violations: Violation[] = [];

  const modules = listFiles(srcDir)
    .filter((f) => SOURCE_FILE.test(f))
    .map(rel)
    .filter((f) => !isGenerated(f))
    .sort();

  const edges = new Map<string, Edge>(); // by `from\0to`
  for (const file of modules) {
    if (layerIndex(file) === -1) {
      violations.push({
        kind: 'unassigned-module',
        file,
        message: `unassigned module: ${file} is in no layer (${RULES.layers.map((l) => l.layer).join(', ')}); place it in one of the layers' directories or add it to RULES in scripts/check-layers.ts`,
      });
    }
    const abs = path.join(root, file);
    for (const ref of extractImports(readFileSync(abs, 'utf8'))) {
      if (!ref.specifier.startsWith('./') && !ref.specifier.startsWith('../')) continue;
      const resolved = resolveSpecifier(abs, ref.specifier);
      if (resolved === undefined) {
        violations.push({
          kind: 'unresolved-import',
          file,
          line: ref.line,
          message: `unresolved import: ${file}:${ref.line} imports '${ref.specifier}', which names no file`,
        });
        continue;
      }
      const to = rel(resolved);
      const key = `${file}\0${to}`;
      const edge = edges.get(key);
      if (edge) {
        if (!edge.kinds.includes(ref.kind)) edge.kinds.push(ref.kind);
      } else {
        edges.set(key, { from: file, to, line: ref.line, kinds: [ref.kind] });
      }
    }
  }

  for (const { from, to, line, kinds } of edges.values()) {
    const how = kinds.join(', ');
    if (to.startsWith('../') || !to.startsWith(`${SOURCE_DIR}/`)) {
      violations.push({ kind: 'import-outside-src', file: from, line, target: to, message: `import outside src/: ${from}:${line} imports ${to} (${how})` });
      continue;
    }
    if (isGenerated(to)) {
      const rule = RULES.generated.importableOnlyFrom.find((r) => matches(to, r.files));
      if (!rule || !matches(from, rule.from)) {
        const allowed = rule ? `${rule.files.join(', ')} may be imported only from ${rule.from.join(', ')}` : `no rule in RULES.generated lets any module import it`;
        violations.push({ kind: 'generated-import', file: from, line, target: to, message: `forbidden generated import: ${from}:${line} imports ${to} (${how}); ${allowed}` });
      }
      continue;
    }
    const fromLayer = layerIndex(from);
    const toLayer = layerIndex(to);
    // An unassigned module is reported once as such; its imports can't be judged by layer.
    if (fromLayer === -1 || toLayer === -1) continue;
    if (toLayer < fromLayer) {
      violations.push({
        kind: 'upward-import',
        file: from,
        line,
        target: to,
        message: `upward import: ${from}:${line} (${layerName(fromLayer)}) imports ${to} (${layerName(toLayer)}) (${how}); ${layerName(fromLayer)} may import only from ${RULES.layers.slice(fromLayer).map((l) => l.layer).join(', ')}`,
      });
    }
  }

  violations.push(...findCycles(modules, [...edges.values()]));
  return violations.sort(
    (a, b) => a.kind.localeCompare(b.kind) || a.file.localeCompare(b.file) || (a.line ?? 0) - (b.line ?? 0) || a.message.localeCompare(b.message),
  );
}

// ---------------------------------------------------------------------------------------------
// Cycles: Tarjan's strongly connected components, then each elementary cycle of a component
// once, starting from its alphabetically first module.
// ---------------------------------------------------------------------------------------------

function findCycles(modules: string[], edges: Edge[]): Violation[] {
  const known = new Set(modules);
  const next = new Map<string, string[]>(modules.map((m) => [m, []]));
  for (const e of edges) if (known.has(e.to)) next.get(e.from)!.push(e.to);
  for (const list of next.values()) list.sort();

  // Tarjan, iterative so a deep import chain can't overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let counter = 0;
  for (const start of modules) {
    if (index.has(start)) continue;
    const work: { node: string; child: number }[] = [{ node: start, child: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const children = next.get(frame.node)!;
      if (frame.child < children.length) {
        const child = children[frame.child++]!;
        if (!index.has(child)) {
          index.set(child, counter);
          low.set(child, counter++);
          stack.push(child);
          onStack.add(child);
          work.push({ node: child, child: 0 });
        } else if (onStack.has(child)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(child)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component.sort());
      }
    }
  }

  const violations: Violation[] = [];
  for (const component of components) {
    const single = component[0]!;
    if (component.length === 1 && !next.get(single)!.includes(single)) continue;
    const order = new Map(component.map((m, k) => [m, k]));
    const cycles: string[][] = [];
    let truncated = false;
    for (const [k, first] of component.entries()) {
      // Cycles through `first` and modules after it only: each cycle is found from its first module.
      const path: string[] = [first];
      const onPath = new Set(path);
      const walk = (node: string): void => {
        for (const child of next.get(node)!) {
          if (truncated) return;
          const at = order.get(child);
          if (at === undefined || at < k) continue;
          if (child === first) {
            cycles.push([...path, first]);
            if (cycles.length >= MAX_CYCLES_PER_GROUP) truncated = true;
          } else if (!onPath.has(child)) {
            path.push(child);
            onPath.add(child);
            walk(child);
            onPath.delete(child);
            path.pop();
          }
        }
      };
      walk(first);
      if (truncated) break;
    }
    for (const cycle of cycles) {
      violations.push({ kind: 'circular-import', file: cycle[0]!, cycle, message: `circular import: ${cycle.join(' → ')}` });
    }
    if (truncated) {
      violations.push({
        kind: 'circular-import',
        file: component[0]!,
        cycle: component,
        message: `circular imports: more than ${MAX_CYCLES_PER_GROUP} cycles among these ${component.length} modules (the first ${MAX_CYCLES_PER_GROUP} are listed): ${component.join(', ')}`,
      });
    }
  }
  return violations;
}

// ---------------------------------------------------------------------------------------------
// Command line
// ---------------------------------------------------------------------------------------------

export function formatViolations(violations: Violation[]): string {
  if (violations.length === 0) return 'check-layers: no violations';
  const lines = [`check-layers: ${violations.length} violation${violations.length === 1 ? '' : 's'}`];
  for (const v of violations) lines.push(`  ${v.message}`);
  return lines.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  const root = path.resolve(process.argv[2] ?? process.cwd());
  const violations = checkLayers(root);
  const report = formatViolations(violations);
  if (violations.length > 0) {
    console.error(report);
    process.exitCode = 1;
  } else {
    console.log(report);
  }
}
