// Answers operations that Parley has already seen and validated without going through Yoga's
// request pipeline (Fetch API objects, envelop hooks, content negotiation), which costs more than
// the work of a cached `history` read (BENCHMARKS.md has the figures). Only what is certainly
// identical takes this path: a JSON POST that accepts plain JSON, a document of queries and
// mutations that passed Yoga's own parse and validation (with the armor limits) once, a valid
// token, and a result without errors. Every error is answered by Yoga, so error formats, masking
// and status codes stay Yoga's. A query that failed simply runs again there. A mutation never
// does: once it has run, Yoga is handed its result in place of executing it (`useExecutedResult`).
// Operations run compiled by graphql-jit: planned once per document, not at every request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { execute, getOperationAST, GraphQLError, Kind, type DocumentNode, type ExecutionResult, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { CompiledQuery } from 'graphql-jit';
import type { Viewer } from '../auth.ts';
import type { Context } from '../graphql/context.ts';
import { compiledOperation } from './compiled-operations.ts';

export interface FastQueryOptions {
  schema: GraphQLSchema;
  authenticate(authorization: string | undefined): Promise<Viewer>;
  contextFor(viewer: Viewer): Context;
  /** How many distinct documents to remember. */
  maxDocuments?: number;
}

interface Params {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
  extensions?: unknown;
}

/** Whether the client takes a plain JSON answer, as Yoga would send it. */
export function acceptsPlainJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  if (accept === undefined || accept === '*/*' || accept === 'application/json') return true;
  return false;
}

/** What became of a request: answered here, or left to Yoga, with the result of a mutation that ran. */
export type FastAnswer = { answered: true } | { answered: false; executed?: ExecutionResult };

/** Context key under which Yoga finds the result of a mutation the fast path already ran. */
interface ExecutedContext {
  executedResult?: ExecutionResult;
}

/**
 * Yoga plugin: when the server context carries the result of a mutation the fast path ran, that
 * result takes the place of execution. The other plugins' hooks still run around it, so errors
 * are masked and formatted exactly as if Yoga had run the mutation itself.
 */
export function useExecutedResult(): Plugin<ExecutedContext> {
  return {
    onExecute({ args, setExecuteFn }) {
      const executed = args.contextValue.executedResult;
      if (executed) setExecuteFn(() => executed);
    },
  };
}

/** Yoga plugin: every document that reaches execution over HTTP is learnt by the fast path. */
export function useFastPathLearning(fastQueries: () => FastQueries): Plugin<{ params?: { query?: unknown }; request?: unknown }> {
  return {
    onExecute({ args }) {
      const query = args.contextValue.params?.query;
      if (args.contextValue.request && typeof query === 'string') fastQueries().learn(query, args.document);
    },
  };
}

export class FastQueries {
  // Operation text → its parsed and validated document, or null: not a document of queries and
  // mutations that Parley can answer here.
  private readonly documents = new Map<string, DocumentNode | null>();
  /** Requests answered here, and requests handed on to Yoga. */
  readonly counts = { answered: 0, declined: 0 };

  constructor(private readonly options: FastQueryOptions) {}

  /** Answers the request, or leaves it to Yoga without writing anything. */
  async answer(req: IncomingMessage, res: ServerResponse, body: string): Promise<FastAnswer> {
    const answer = await this.tryAnswer(req, res, body).catch((): FastAnswer => ({ answered: false }));
    this.counts[answer.answered ? 'answered' : 'declined']++;
    return answer;
  }

  private async tryAnswer(req: IncomingMessage, res: ServerResponse, body: string): Promise<FastAnswer> {
    const declined: FastAnswer = { answered: false };
    let params: Params;
    try {
      params = JSON.parse(body) as Params;
    } catch {
      return declined;
    }
    if (typeof params !== 'object' || params === null || typeof params.query !== 'string' || params.extensions != null) return declined;
    const { variables, operationName } = params;
    if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return declined;
    if (operationName != null && typeof operationName !== 'string') return declined;
    const operation = this.operation(params.query, operationName as string | null | undefined);
    if (!operation) return declined;
    let viewer: Viewer;
    try {
      viewer = await this.options.authenticate(req.headers.authorization);
    } catch {
      return declined;
    }
    const context = this.options.contextFor(viewer);
    const vars = variables as Record<string, unknown> | null | undefined;
    if (operation.compiled) {
      const result = await operation.compiled.query(undefined, context, vars);
      if (result.errors || res.headersSent) return declined;
      return this.send(res, JSON.stringify(result));
    }
    // From here on the mutation may have written: whatever happens, it is not run a second time.
    // It runs on graphql-js' executor, not graphql-jit, so that a failure handed to Yoga reads as
    // Yoga's own (error locations, key order); a mutation's selection is small.
    let result: ExecutionResult;
    try {
      result = await execute({ schema: this.options.schema, document: operation.document, operationName: operationName as string | null | undefined, contextValue: context, variableValues: vars });
    } catch (error) {
      result = { data: null, errors: [error instanceof GraphQLError ? error : new GraphQLError('the operation failed', { originalError: error as Error })] };
    }
    // Errors without a path (variables that do not coerce) come before any resolver ran: Yoga
    // runs the operation itself and reports them in graphql-js' words.
    if (result.errors?.every((error) => !error.path) && result.data == null) return declined;
    if (result.errors || res.headersSent) return { answered: false, executed: result };
    let json: string;
    try {
      json = JSON.stringify(result);
    } catch {
      return { answered: false, executed: result };
    }
    return this.send(res, json);
  }

  private send(res: ServerResponse, json: string): FastAnswer {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    return { answered: true };
  }

  /** The selected operation: a query compiled by graphql-jit, or a mutation (`compiled` null). */
  /**
   * Remembers a document that Yoga parsed and validated, in a real request's context, on its way
   * to execution. Only such documents take this path: parsing or validating here, outside a
   * request, would leave errors in Yoga's caches without the status and code a request gives them.
   */
  learn(query: string, document: DocumentNode): void {
    if (this.documents.has(query)) return;
    const supported = document.definitions.every((d) => d.kind === Kind.FRAGMENT_DEFINITION || (d.kind === Kind.OPERATION_DEFINITION && d.operation !== 'subscription'));
    // Bounded: a client sending endless distinct documents only evicts the oldest.
    if (this.documents.size >= (this.options.maxDocuments ?? 1000)) this.documents.delete(this.documents.keys().next().value!);
    this.documents.set(query, supported ? document : null);
  }

  private operation(query: string, operationName: string | null | undefined): { document: DocumentNode; compiled: CompiledQuery | null } | null {
    const document = this.documents.get(query);
    // Null for a document Yoga has not run yet, or an unknown or ambiguous operation name: Yoga
    // then answers (and reports what is wrong).
    const selected = document && getOperationAST(document, operationName);
    if (!document || !selected) return null;
    if (selected.operation === 'mutation') return { document, compiled: null };
    const compiled = compiledOperation(this.options.schema, document, operationName);
    return compiled && { document, compiled };
  }
}
