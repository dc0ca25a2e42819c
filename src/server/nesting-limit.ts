// graphql-js parses nested lists, objects and selections recursively: a document nesting about a
// thousand `[` overflows the stack inside the parser (graphql-armor's limits run after parsing,
// its token limit too late for a deep one). The text is scanned first, in one linear pass that
// skips strings and comments, and a document nesting deeper than the limit is refused unparsed.
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** How deep any `{`, `[` or `(` may nest in a document. */
export const MAX_DOCUMENT_NESTING = 64;

/** The deepest nesting of brackets in a GraphQL document's text, outside strings and comments. */
export function documentNesting(source: string): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < source.length; i++) {
    const c = source.charCodeAt(i);
    if (c === 0x7b || c === 0x5b || c === 0x28) {
      if (++depth > deepest) deepest = depth;
    } else if (c === 0x7d || c === 0x5d || c === 0x29) {
      if (depth > 0) depth--;
    } else if (c === 0x23) {
      // A comment runs to the end of the line.
      while (i < source.length && source.charCodeAt(i) !== 0x0a && source.charCodeAt(i) !== 0x0d) i++;
    } else if (c === 0x22) {
      if (source.startsWith('"""', i)) {
        // A block string ends at the next unescaped """.
        i += 3;
        while (i < source.length && !(source.startsWith('"""', i) && source[i - 1] !== '\\')) i++;
        i += 2;
      } else {
        i++;
        while (i < source.length && source.charCodeAt(i) !== 0x22 && source.charCodeAt(i) !== 0x0a) {
          if (source.charCodeAt(i) === 0x5c) i++;
          i++;
        }
      }
    }
  }
  return deepest;
}

/** Envelop plugin: refuses, before parsing, a document nested deeper than `max`. */
export function useNestingLimit(max = MAX_DOCUMENT_NESTING, code = 'GRAPHQL_VALIDATION_FAILED'): Plugin {
  return {
    onParse({ params }) {
      const source = typeof params.source === 'string' ? params.source : params.source.body;
      if (documentNesting(source) > max) {
        // `http.spec`: a 400 where the GraphQL-over-HTTP spec asks for one, as Yoga marks its own parse errors.
        throw new GraphQLError(`the document nests brackets more than ${max} deep`, { extensions: { code, http: { spec: true, status: 400 } } });
      }
    },
  };
}
