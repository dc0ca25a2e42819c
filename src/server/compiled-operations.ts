// Operations compiled by graphql-jit once per schema, document and operation name: shared by the
// fast path for queries and the shared execution of subscription events.
import type { DocumentNode, GraphQLSchema } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';

const compiled = new WeakMap<GraphQLSchema, WeakMap<DocumentNode, Map<string, CompiledQuery | null>>>();
// Names come from requests, and an unknown one compiles to null: remembered up to a bound.
const MAX_NAMES_PER_DOCUMENT = 20;

/** The operation compiled, or null when graphql-jit cannot compile it (unknown or ambiguous name). */
export function compiledOperation(schema: GraphQLSchema, document: DocumentNode, operationName?: string | null): CompiledQuery | null {
  let bySchema = compiled.get(schema);
  if (!bySchema) compiled.set(schema, (bySchema = new WeakMap()));
  let byName = bySchema.get(document);
  if (!byName) bySchema.set(document, (byName = new Map()));
  const name = operationName ?? '';
  let operation = byName.get(name);
  if (operation === undefined) {
    const result = compileQuery(schema, document, operationName ?? undefined);
    operation = isCompiledQuery(result) ? result : null;
    if (byName.size < MAX_NAMES_PER_DOCUMENT) byName.set(name, operation);
  }
  return operation;
}
