// selectedFields decides which columns a message page reads: a field it misses would come back
// null, so it is checked here against graphql-js's own execution of every selection form.
import { buildSchema, execute, parse, type GraphQLResolveInfo } from 'graphql';
import { describe, expect, it } from 'vitest';
import { selectedFields } from '../src/graphql/selection.ts';

const schema = buildSchema(`
  type Item { id: ID! a: String b: String c: String }
  type Edge { node: Item! cursor: String! }
  type Connection { edges: [Edge!]! }
  type Query { items: Connection! }
`);

function fieldsFor(document: string): string[] {
  let seen: ReadonlySet<string> | undefined;
  const result = execute({
    schema,
    document: parse(document),
    rootValue: {
      items: (_: unknown, __: unknown, info: GraphQLResolveInfo) => {
        seen = selectedFields(info, ['edges', 'node']);
        return { edges: [] };
      },
    },
  });
  expect((result as { errors?: unknown }).errors).toBeUndefined();
  return [...seen!].sort();
}

describe('selectedFields', () => {
  it('finds the fields below a path, through aliases, fragments, inline fragments and repeats', () => {
    expect(fieldsFor('{ items { edges { node { id a } } } }')).toEqual(['a', 'id']);
    expect(fieldsFor('{ items { edges { cursor node { x: b } } } }')).toEqual(['b']);
    expect(fieldsFor('{ items { edges { node { ...F } } } } fragment F on Item { a ...G } fragment G on Item { c }')).toEqual(['a', 'c']);
    expect(fieldsFor('{ items { edges { node { ... on Item { b } } } } }')).toEqual(['b']);
    expect(fieldsFor('{ items { ...E edges { node { id } } } } fragment E on Connection { edges { node { c } } }')).toEqual(['c', 'id']);
    expect(fieldsFor('{ items { edges { node { a @skip(if: true) } } } }')).toEqual(['a']);
    expect(fieldsFor('{ items { edges { cursor } } }')).toEqual([]);
  });

  it('merges the selections of the same field asked twice under one response key', () => {
    expect(fieldsFor('{ items { edges { node { a } } edges { node { b } } } }')).toEqual(['a', 'b']);
  });
});
