// Baseline for scenario 1: graphql-yoga as it comes (createYoga's defaults) on node:http, with
// graphql-jit executing the operations, and one resolver doing the Redis GET of the stored
// `history` answer. It answers Parley's query with the same bytes.
import { createServer } from 'node:http';
import type { DocumentNode } from 'graphql';
import { compileQuery, isCompiledQuery, type CompiledQuery } from 'graphql-jit';
import { createSchema, createYoga, type Plugin } from 'graphql-yoga';
import { Redis } from 'ioredis';

const redis = new Redis(process.env.REDIS_URL!);
const key = process.env.BASELINE_KEY!;

const schema = createSchema({
  typeDefs: /* GraphQL */ `
    enum Role {
      ASSISTANT
      SYSTEM
      USER
    }
    type ChatMessage {
      role: Role!
      content: String!
    }
    type Query {
      history(conversationId: ID!, limit: Int = 20): [ChatMessage!]!
    }
  `,
  resolvers: {
    Query: {
      // The stored answer is the whole response; the resolver returns its list, as a cache would.
      history: async () => (JSON.parse((await redis.get(key))!) as { data: { history: unknown[] } }).data.history,
    },
  },
});

// What @envelop/graphql-jit does, without the package: Yoga parses each query text once and
// caches the document, so a document compiles once and every later request runs the compiled form.
const compiled = new WeakMap<DocumentNode, CompiledQuery | null>();
const useGraphqlJit: Plugin = {
  onExecute({ args, setExecuteFn }) {
    let query = compiled.get(args.document);
    if (query === undefined) {
      const result = compileQuery(args.schema, args.document, args.operationName ?? undefined);
      query = isCompiledQuery(result) ? result : null;
      compiled.set(args.document, query);
    }
    const run = query;
    if (run) setExecuteFn((execution) => run.query(execution.rootValue, execution.contextValue, execution.variableValues));
  },
};

createServer(createYoga({ schema, plugins: [useGraphqlJit] })).listen(Number(process.env.PORT), '127.0.0.1');
