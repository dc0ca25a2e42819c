// Answers read-only operations that Parley has already seen and validated without going through
// Yoga's request pipeline (Fetch API objects, envelop hooks, content negotiation), which cost more
// than the work of a cached `history` read. Only what is certainly identical takes this path: a
// JSON POST that accepts plain JSON, a document that is nothing but queries and passed Yoga's own
// parse and validation (with the armor limits) once, a valid token, and a result without errors.
// Everything else, including every error, is answered by Yoga, so error formats, masking and
// status codes stay Yoga's. Queries have no side effects, so running one again there is safe.
// Operations run compiled by graphql-jit: planned once per document, not at every request.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Kind, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { CompiledQuery } from 'graphql-jit';
import type { Viewer } from '../auth.ts';
import type { Context } from '../graphql/context.ts';
import { compiledOperation } from './compiled-operations.ts';

export interface FastQueryOptions {
  schema: GraphQLSchema;
  /** Yoga's parse and validate, with every plugin's rules; null when the document is not valid. */
  prepare(query: string): DocumentNode | null;
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

export class FastQueries {
  // Query text → its parsed and validated document, or null: not a read-only operation Parley can
  // answer here.
  private readonly documents = new Map<string, DocumentNode | null>();
  /** Requests answered here, and requests handed on to Yoga. */
  readonly counts = { answered: 0, declined: 0 };

  constructor(private readonly options: FastQueryOptions) {}

  /** Answers the request and returns true, or returns false without writing anything. */
  async answer(req: IncomingMessage, res: ServerResponse, body: string): Promise<boolean> {
    const answered = await this.tryAnswer(req, res, body).catch(() => false);
    this.counts[answered ? 'answered' : 'declined']++;
    return answered;
  }

  private async tryAnswer(req: IncomingMessage, res: ServerResponse, body: string): Promise<boolean> {
    let params: Params;
    try {
      params = JSON.parse(body) as Params;
    } catch {
      return false;
    }
    if (typeof params !== 'object' || params === null || typeof params.query !== 'string' || params.extensions != null) return false;
    const { variables, operationName } = params;
    if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return false;
    if (operationName != null && typeof operationName !== 'string') return false;
    const operation = this.operation(params.query, operationName as string | null | undefined);
    if (!operation) return false;
    let viewer: Viewer;
    try {
      viewer = await this.options.authenticate(req.headers.authorization);
    } catch {
      return false;
    }
    const result = await operation.query(undefined, this.options.contextFor(viewer), variables as Record<string, unknown> | null | undefined);
    if (result.errors || res.headersSent) return false;
    const json = JSON.stringify(result);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) });
    res.end(json);
    return true;
  }

  private operation(query: string, operationName: string | null | undefined): CompiledQuery | null {
    let document = this.documents.get(query);
    if (document === undefined) {
      const parsed = this.options.prepare(query);
      const readOnly = parsed?.definitions.every((d) => d.kind === Kind.FRAGMENT_DEFINITION || (d.kind === Kind.OPERATION_DEFINITION && d.operation === 'query'));
      document = parsed && readOnly ? parsed : null;
      // Bounded: a client sending endless distinct documents only evicts the oldest.
      if (this.documents.size >= (this.options.maxDocuments ?? 1000)) this.documents.delete(this.documents.keys().next().value!);
      this.documents.set(query, document);
    }
    // Null for an unknown or ambiguous operation name: Yoga then reports it.
    return document ? compiledOperation(this.options.schema, document, operationName) : null;
  }
}
