import { z } from 'zod';
import { badInput } from '../errors.ts';

/** Parses `value` with `schema`; the first problem becomes BAD_USER_INPUT naming the field under `root`. */
export function parseInput<Schema extends z.ZodType>(schema: Schema, value: unknown, root: string): z.output<Schema> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw badInput([root, ...issue.path].join('.'), issue.message);
}

// A UTF-16 half without its partner: it has no UTF-8 form, so drivers would send U+FFFD instead.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/**
 * Why no database can store `text` exactly, or undefined when every one can: PostgreSQL refuses
 * U+0000 in text, and a lone surrogate would silently become U+FFFD.
 */
export function textProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain U+0000 (NUL)';
  if (LONE_SURROGATE.test(text)) return 'must not contain unpaired UTF-16 surrogates';
  return undefined;
}

/** Whether `text` is stored exactly everywhere. An id that is not names no row, so it matches nothing. */
export const isStorableText = (text: string): boolean => textProblem(text) === undefined;

/** A string that every database stores exactly; refused otherwise. Chain further checks on it. */
export const storableText = () =>
  z.string().superRefine((text, ctx) => {
    const problem = textProblem(text);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

export interface JsonLimits {
  /** How many arrays and objects may nest inside each other. */
  maxDepth: number;
  /** Longest serialized JSON, in UTF-16 code units. */
  maxChars: number;
}

type JsonPath = (string | number)[];

/**
 * The first part of a client's JSON value that cannot be stored exactly: a string or key no
 * database stores exactly, a number JSON cannot carry (1e999 parses as Infinity), or nesting past
 * `maxDepth`. Walks without recursion: the request body parser accepts any depth.
 */
function jsonProblem(root: unknown, maxDepth: number): { path: JsonPath; problem: string } | undefined {
  const pending: { value: unknown; path: JsonPath }[] = [{ value: root, path: [] }];
  while (pending.length > 0) {
    const { value, path } = pending.pop()!;
    if (typeof value === 'string') {
      const problem = textProblem(value);
      if (problem) return { path, problem };
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) return { path, problem: 'must be a finite number' };
    } else if (value !== null && typeof value === 'object') {
      if (path.length >= maxDepth) return { path, problem: `must not nest arrays and objects more than ${maxDepth} deep` };
      // Pushed last to first, so the first problem in document order is found first.
      if (Array.isArray(value)) {
        for (let i = value.length - 1; i >= 0; i--) pending.push({ value: value[i], path: [...path, i] });
      } else {
        const keys = Object.keys(value);
        for (const key of keys) {
          const problem = textProblem(key);
          if (problem) return { path, problem: `a key ${problem}` };
        }
        for (let i = keys.length - 1; i >= 0; i--) pending.push({ value: (value as Record<string, unknown>)[keys[i]!], path: [...path, keys[i]!] });
      }
    } else if (typeof value !== 'boolean' && value !== null) {
      return { path, problem: 'must be JSON' };
    }
  }
  return undefined;
}

/** A JSON value that every database stores exactly, within `limits`; null and undefined pass. */
export const storableJson = (limits: JsonLimits) =>
  z.unknown().superRefine((value, ctx) => {
    if (value == null) return;
    const found = jsonProblem(value, limits.maxDepth);
    if (found) ctx.addIssue({ code: 'custom', message: found.problem, path: found.path });
    // Only a value of bounded depth may be serialized: JSON.stringify recurses.
    else if (JSON.stringify(value).length > limits.maxChars) ctx.addIssue({ code: 'custom', message: `must be at most ${limits.maxChars} bytes of JSON` });
  });
