// A thin node:http adapter for the commonest request: a JSON POST that takes a plain JSON answer,
// carrying a query or mutation that Yoga has already parsed and validated in an earlier request.
// It skips only Yoga's Fetch-API layer (Request and Response objects, body parsing, content
// negotiation), which costs more than the work of a cached `history` read. The operation still
// runs through the enveloped functions of Yoga's own plugin chain, the same as every path:
// parse, validate, context, execute, with error masking. Its answer is built the way Yoga builds
// it (`processRegularResult`): the same status, headers and body.
// Until execution starts, anything unexpected (a token that does not verify, a plugin refusing in
// parse or validate) leaves the whole request to Yoga, which then answers it. From execution on,
// this adapter answers, whatever the result: an operation runs once.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GraphQLError, Kind, getOperationAST, type DocumentNode, type ExecutionArgs, type ExecutionResult, type GraphQLSchema } from 'graphql';
import { isAsyncIterable, processRegularResult, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { sendFetchResponse } from './fetch-response.ts';

type AnyYoga = Pick<YogaServerInstance<Record<string, unknown>, Record<string, unknown>>, 'getEnveloped' | 'fetchAPI'>;

export interface FastPathOptions {
  /** Off when a plugin hooks into Yoga's HTTP layer, which this adapter does not run. */
  enabled: boolean;
  /** How many distinct documents to remember. */
  maxDocuments?: number;
  /** What an error thrown out of execution becomes (execution errors inside a result are masked by the chain). */
  maskError(error: unknown): GraphQLError;
}

interface Params {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
  extensions?: unknown;
}

const PARAM_NAMES = new Set(['query', 'variables', 'operationName', 'extensions']);

/**
 * Hooks of Yoga's HTTP layer (and of the server adapter under it). The fast path does not run
 * them, so a plugin that has one turns the fast path off: no plugin silently misses operations.
 */
export const HTTP_LAYER_HOOKS = ['onRequest', 'onRequestParse', 'onParams', 'onExecutionResult', 'onResultProcess', 'onResponse', 'instrumentation'] as const;

export function hooksHttpLayer(plugin: object): boolean {
  return HTTP_LAYER_HOOKS.some((hook) => (plugin as Record<string, unknown>)[hook] !== undefined);
}

/** Whether the client takes a plain JSON answer, as Yoga would send it. */
export function acceptsPlainJson(req: IncomingMessage): boolean {
  const accept = req.headers.accept;
  return accept === undefined || accept === '*/*' || accept === 'application/json';
}

/** Yoga plugin: every document that reaches execution over HTTP is learnt by the fast path. */
export function useFastPathLearning(fastPath: () => FastPath): Plugin<{ params?: { query?: unknown }; request?: unknown }> {
  return {
    onExecute({ args }) {
      const query = args.contextValue.params?.query;
      if (args.contextValue.request && typeof query === 'string') fastPath().learn(query, args.document);
    },
  };
}

export class FastPath {
  // Operation text → true when it is a document of queries and mutations that Yoga parsed and
  // validated in a request; false when Yoga ran it but it is not one this adapter takes.
  private readonly documents = new Map<string, boolean>();
  /** Requests answered here, and requests handed on to Yoga. */
  readonly counts = { answered: 0, declined: 0 };

  constructor(
    private readonly yoga: AnyYoga,
    private readonly options: FastPathOptions,
  ) {}

  /** Answers the request and returns true, or returns false having written nothing (Yoga's turn). */
  async answer(req: IncomingMessage, res: ServerResponse, body: string): Promise<boolean> {
    const answered = this.options.enabled && (await this.tryAnswer(req, res, body));
    this.counts[answered ? 'answered' : 'declined']++;
    return answered;
  }

  /**
   * Remembers a document that Yoga parsed and validated in a real request, on its way to
   * execution. Only such documents take this path, so that a document's first errors are always
   * reported by Yoga itself, with the status and code a request gives them.
   */
  learn(query: string, document: DocumentNode): void {
    if (this.documents.has(query)) return;
    const supported = document.definitions.every((d) => d.kind === Kind.FRAGMENT_DEFINITION || (d.kind === Kind.OPERATION_DEFINITION && d.operation !== 'subscription'));
    // Bounded: a client sending endless distinct documents only evicts the oldest.
    if (this.documents.size >= (this.options.maxDocuments ?? 1000)) this.documents.delete(this.documents.keys().next().value!);
    this.documents.set(query, supported);
  }

  private async tryAnswer(req: IncomingMessage, res: ServerResponse, body: string): Promise<boolean> {
    const params = knownParams(body);
    if (!params || this.documents.get(params.query) !== true) return false;
    let prepared: { args: ExecutionArgs; execute: (args: ExecutionArgs) => unknown } | null;
    try {
      prepared = await this.prepare(req, res, params);
    } catch {
      prepared = null;
    }
    if (!prepared || res.headersSent) return false;
    // From here on the operation may write: whatever happens, this adapter answers.
    let result: ExecutionResult;
    try {
      result = (await prepared.execute(prepared.args)) as ExecutionResult;
    } catch (error) {
      result = { errors: [this.options.maskError(error)] };
    }
    await this.send(res, result);
    return true;
  }

  /** Parse, validate and context through the plugin chain, as Yoga runs them; null when anything is off. */
  private async prepare(req: IncomingMessage, res: ServerResponse, params: KnownParams) {
    const enveloped = this.yoga.getEnveloped({ req, res, params });
    const document = enveloped.parse(params.query);
    if (!getOperationAST(document, params.operationName)) return null;
    if (enveloped.validate(enveloped.schema, document).length > 0) return null;
    const contextValue = await enveloped.contextFactory();
    const args: ExecutionArgs = {
      schema: enveloped.schema as GraphQLSchema,
      document,
      contextValue,
      variableValues: params.variables,
      operationName: params.operationName,
    };
    return { args, execute: enveloped.execute as (args: ExecutionArgs) => unknown };
  }

  private async send(res: ServerResponse, result: ExecutionResult): Promise<void> {
    if (!result.errors && !result.extensions && !isAsyncIterable(result)) {
      // What processRegularResult answers for a result without errors or extensions.
      let json: string | undefined;
      try {
        json = JSON.stringify(result);
      } catch (error) {
        result = { errors: [this.options.maskError(error)] };
      }
      if (json !== undefined) return void res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(json) }).end(json);
    }
    if (isAsyncIterable(result)) void (result as AsyncIterableIterator<unknown>).return?.();
    await sendFetchResponse(res, processRegularResult(result, this.yoga.fetchAPI, 'application/json'));
  }
}

interface KnownParams {
  query: string;
  variables?: Record<string, unknown>;
  operationName?: string;
}

/** The request's parameters when they are exactly what Yoga accepts without remark, else null. */
function knownParams(body: string): KnownParams | null {
  let params: Params;
  try {
    params = JSON.parse(body) as Params;
  } catch {
    return null;
  }
  if (typeof params !== 'object' || params === null || Array.isArray(params) || typeof params.query !== 'string' || params.extensions != null) return null;
  for (const name in params) if (!PARAM_NAMES.has(name)) return null;
  const { query, variables, operationName } = params;
  if (variables != null && (typeof variables !== 'object' || Array.isArray(variables))) return null;
  if (operationName != null && typeof operationName !== 'string') return null;
  return { query, variables: (variables ?? undefined) as Record<string, unknown> | undefined, operationName: (operationName ?? undefined) as string | undefined };
}
