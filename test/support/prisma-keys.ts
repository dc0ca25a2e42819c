// The keys a Prisma schema declares, read from its text: primary keys (@id, @@id), unique
// constraints (@unique, @@unique), indexes (@@index) and foreign keys (@relation), in the database's
// table and column names (@map, @@map) and with Prisma's default constraint names. Pothos'
// getDatamodel() carries unique constraints and ids but no indexes or referential actions, so the
// migration tests read the schema itself. This is a reader for the attributes Parley's schemas use,
// not a full Prisma parser: an attribute argument it does not know fails loudly.

export interface KeyColumn {
  column: string;
  desc: boolean;
}

export interface DeclaredKey {
  /** The Prisma model, for keys read from a schema. */
  model?: string;
  table: string;
  kind: 'PRIMARY KEY' | 'UNIQUE' | 'INDEX' | 'FOREIGN KEY';
  /** The constraint name, explicit (`map:`) or Prisma's default. */
  name: string;
  columns: KeyColumn[];
  references?: { table: string; columns: string[]; onDelete: string; onUpdate: string };
}

interface Field {
  name: string;
  column: string;
  type: string;
  optional: boolean;
  attributes: string;
}

interface Model {
  name: string;
  table: string;
  fields: Field[];
  blockAttributes: string[];
}

/** Splits on `separator` outside of (), [] and strings. */
function splitTopLevel(text: string, separator: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === separator && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((p) => p !== '');
}

/** The argument text of every `@name(...)` (or '' for a bare `@name`) in an attribute list. */
function attributeArgs(attributes: string, name: string): string[] {
  const found: string[] = [];
  const pattern = new RegExp(`(?<![\\w.@])${name.replace(/@/g, '@')}(?![\\w.])`, 'g');
  for (const match of attributes.matchAll(pattern)) {
    let i = match.index + match[0].length;
    if (attributes[i] !== '(') {
      found.push('');
      continue;
    }
    let depth = 0;
    let quoted = false;
    const open = i;
    for (; i < attributes.length; i++) {
      const c = attributes[i];
      if (quoted) {
        if (c === '\\') i++;
        else if (c === '"') quoted = false;
      } else if (c === '"') quoted = true;
      else if (c === '(') depth++;
      else if (c === ')' && --depth === 0) break;
    }
    found.push(attributes.slice(open + 1, i));
  }
  return found;
}

/** Positional and named arguments of an attribute: `[a, b], map: "x"` → { '': '[a, b]', map: '"x"' }. */
function namedArgs(args: string, allowed: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const part of splitTopLevel(args, ',')) {
    const named = /^(\w+)\s*:\s*([\s\S]*)$/.exec(part);
    const [key, value] = named ? [named[1]!, named[2]!] : ['', part];
    if (!allowed.includes(key)) throw new Error(`unsupported attribute argument ${key || '(positional)'} in (${args})`);
    result[key] = value.trim();
  }
  return result;
}

const unquote = (value: string) => JSON.parse(value) as string;

/** `[a, b(sort: Desc)]` → [{ name: 'a', desc: false }, { name: 'b', desc: true }]. */
function fieldList(list: string): { name: string; desc: boolean }[] {
  const inner = /^\[([\s\S]*)\]$/.exec(list.trim());
  if (!inner) throw new Error(`expected a field list, got ${list}`);
  return splitTopLevel(inner[1]!, ',').map((item) => {
    const m = /^(\w+)(?:\(([\s\S]*)\))?$/.exec(item);
    if (!m) throw new Error(`unsupported field reference ${item}`);
    const options = m[2] ? namedArgs(m[2], ['sort', 'length', 'ops']) : {};
    if (options.length || options.ops) throw new Error(`prefix lengths and operator classes are not checked: ${item}`);
    return { name: m[1]!, desc: options.sort === 'Desc' };
  });
}

export function parseModels(schema: string): Model[] {
  const models: Model[] = [];
  for (const block of schema.matchAll(/^model\s+(\w+)\s*\{([\s\S]*?)^\}/gm)) {
    const model: Model = { name: block[1]!, table: block[1]!, fields: [], blockAttributes: [] };
    for (const raw of block[2]!.split('\n')) {
      const line = raw.trim();
      if (line === '' || line.startsWith('//')) continue;
      if (line.startsWith('@@')) {
        model.blockAttributes.push(line);
        continue;
      }
      const m = /^(\w+)\s+(\w+)(\?|\[\])?\s*(.*)$/.exec(line);
      if (!m) throw new Error(`model ${model.name}: cannot read the line ${line}`);
      const map = attributeArgs(m[4]!, '@map')[0];
      model.fields.push({ name: m[1]!, column: map ? unquote(map) : m[1]!, type: m[2]!, optional: m[3] === '?', attributes: m[4]! });
    }
    const tableMap = model.blockAttributes.flatMap((a) => attributeArgs(a, '@@map'))[0];
    if (tableMap) model.table = unquote(tableMap);
    models.push(model);
  }
  return models;
}

const REFERENTIAL_ACTIONS: Record<string, string> = {
  Cascade: 'CASCADE',
  Restrict: 'RESTRICT',
  NoAction: 'NO ACTION',
  SetNull: 'SET NULL',
  SetDefault: 'SET DEFAULT',
};

function referentialAction(action: string): string {
  const sql = REFERENTIAL_ACTIONS[action];
  if (!sql) throw new Error(`unknown referential action ${action}`);
  return sql;
}

/** Every key the schema's models declare, with Prisma's default names where none is given. */
export function declaredKeys(schema: string): DeclaredKey[] {
  const models = parseModels(schema);
  const byName = new Map(models.map((m) => [m.name, m]));
  const keys: DeclaredKey[] = [];
  for (const model of models) {
    const field = (name: string) => {
      const f = model.fields.find((x) => x.name === name);
      if (!f) throw new Error(`model ${model.name} has no field ${name}`);
      return f;
    };
    const columns = (list: string) => fieldList(list).map((f) => ({ column: field(f.name).column, desc: f.desc }));
    const defaultName = (cols: KeyColumn[], suffix: string) => `${model.table}_${cols.map((c) => c.column).join('_')}_${suffix}`;
    const add = (kind: DeclaredKey['kind'], cols: KeyColumn[], map: string | undefined, suffix: string, references?: DeclaredKey['references']) =>
      keys.push({
        model: model.name,
        table: model.table,
        kind,
        // MySQL's primary key is always called PRIMARY, whatever the schema says.
        name: kind === 'PRIMARY KEY' ? 'PRIMARY' : map ? unquote(map) : defaultName(cols, suffix),
        columns: cols,
        ...(references ? { references } : {}),
      });

    for (const f of model.fields) {
      for (const args of attributeArgs(f.attributes, '@id')) {
        add('PRIMARY KEY', [{ column: f.column, desc: false }], namedArgs(args, ['map', 'sort', 'length']).map, 'pkey');
      }
      for (const args of attributeArgs(f.attributes, '@unique')) {
        const a = namedArgs(args, ['map', 'sort', 'length']);
        if (a.length) throw new Error(`prefix lengths are not checked: ${model.name}.${f.name}`);
        add('UNIQUE', [{ column: f.column, desc: a.sort === 'Desc' }], a.map, 'key');
      }
      for (const args of attributeArgs(f.attributes, '@relation')) {
        const a = namedArgs(args, ['', 'name', 'fields', 'references', 'onDelete', 'onUpdate', 'map']);
        if (!a.fields) continue; // the other side of the relation
        const target = byName.get(f.type);
        if (!target) throw new Error(`${model.name}.${f.name}: no model ${f.type}`);
        const from = fieldList(a.fields).map((x) => field(x.name));
        const to = fieldList(a.references ?? '').map((x) => {
          const t = target.fields.find((y) => y.name === x.name);
          if (!t) throw new Error(`model ${target.name} has no field ${x.name}`);
          return t.column;
        });
        // Prisma's defaults: a required relation restricts deletes, an optional one sets null;
        // updates cascade.
        const required = from.every((x) => !x.optional);
        add('FOREIGN KEY', from.map((x) => ({ column: x.column, desc: false })), a.map, 'fkey', {
          table: target.table,
          columns: to,
          onDelete: referentialAction(a.onDelete ?? (required ? 'Restrict' : 'SetNull')),
          onUpdate: referentialAction(a.onUpdate ?? 'Cascade'),
        });
      }
    }
    for (const attribute of model.blockAttributes) {
      const kind = /^@@(\w+)/.exec(attribute)![1]!;
      const args = attributeArgs(attribute, `@@${kind}`)[0] ?? '';
      if (kind === 'map') continue;
      if (kind !== 'id' && kind !== 'unique' && kind !== 'index') throw new Error(`model ${model.name}: unsupported ${attribute}`);
      const a = namedArgs(args, ['', 'fields', 'name', 'map', 'type', 'clustered']);
      if (a.type || a.clustered) throw new Error(`model ${model.name}: index types are not checked: ${attribute}`);
      const cols = columns(a[''] ?? a.fields ?? '');
      if (kind === 'id') add('PRIMARY KEY', cols, a.map, 'pkey');
      else if (kind === 'unique') add('UNIQUE', cols, a.map, 'key');
      else add('INDEX', cols, a.map, 'idx');
    }
  }
  return keys;
}

/** One line per key, e.g. `Message UNIQUE Message_conversationId_seq_key (conversationId, seq)`. */
export function describeKey(key: DeclaredKey, withName = true): string {
  const cols = key.columns.map((c) => `${c.column}${c.desc ? ' DESC' : ''}`).join(', ');
  const name = withName && key.kind !== 'PRIMARY KEY' ? ` ${key.name}` : '';
  const refs = key.references
    ? ` REFERENCES ${key.references.table} (${key.references.columns.join(', ')}) ON DELETE ${key.references.onDelete} ON UPDATE ${key.references.onUpdate}`
    : '';
  return `${key.table} ${key.kind}${name} (${cols})${refs}`;
}
