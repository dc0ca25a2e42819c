// Subscribers of the same message on one instance receive the same event objects from the broker.
// This envelop plugin executes a subscription's selection once per event and operation (same
// document, variables and viewer) and hands every such subscriber the same result, instead of
// one GraphQL execution per event and subscriber. The selection runs compiled by graphql-jit.
import type { Plugin } from '@envelop/core';
import { createSourceEventStream, execute, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { CompiledQuery } from 'graphql-jit';
import type { Context } from '../graphql/context.ts';
import { compiledOperation } from './compiled-operations.ts';

type Result = ExecutionResult | Promise<ExecutionResult>;

const documentIds = new WeakMap<object, number>();
let nextDocumentId = 0;

/** Per source event: the result of each operation executed on it. Dropped with the event. */
const resultsByEvent = new WeakMap<object, Map<string, Result>>();

export function useSharedSubscriptionEvents(): Plugin<Context> {
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(sharedSubscribe as never);
    },
  };
}

async function sharedSubscribe(args: ExecutionArgs): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const stream = await createSourceEventStream(args);
  if (!(Symbol.asyncIterator in stream)) return stream;
  const source = stream[Symbol.asyncIterator]();
  // Built at the first event: an idle subscription should hold as little as possible.
  let key: string | undefined;
  let compiled: CompiledQuery | null | undefined;
  const run = (event: unknown): Result => {
    compiled ??= compiledOperation(args.schema, args.document, args.operationName);
    return compiled ? compiled.query(event, args.contextValue, args.variableValues) : execute({ ...args, rootValue: event });
  };
  const resultFor = (event: unknown): Result => {
    if (typeof event !== 'object' || event === null) return run(event);
    key ??= operationKey(args);
    let results = resultsByEvent.get(event);
    if (!results) resultsByEvent.set(event, (results = new Map()));
    let result = results.get(key);
    if (!result) results.set(key, (result = run(event)));
    return result;
  };
  // A plain object, not an async generator: return() must reach the source at once, even while
  // a next() is pending, so an unsubscribing client releases its listeners immediately.
  const iterator: AsyncIterableIterator<ExecutionResult> = {
    next: async () => {
      const step = await source.next();
      return step.done ? { done: true, value: undefined } : { done: false, value: await resultFor(step.value) };
    },
    return: async () => {
      await source.return?.();
      return { done: true, value: undefined };
    },
    throw: async (error) => {
      if (source.throw) await source.throw(error);
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}

function operationKey(args: ExecutionArgs): string {
  let documentId = documentIds.get(args.document);
  if (documentId === undefined) documentIds.set(args.document, (documentId = nextDocumentId++));
  const viewer = (args.contextValue as Partial<Context> | undefined)?.viewer?.userId ?? '';
  return JSON.stringify([documentId, args.operationName ?? null, args.variableValues ?? null, viewer]);
}
