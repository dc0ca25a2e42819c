// Envelop plugin: queries execute compiled by graphql-jit on every path (the fast path, Yoga's
// HTTP and SSE, graphql-ws), planned once per document instead of walked at every request.
// An operation whose variables do not coerce is left to Yoga's executor, which refuses it in its
// own words and with its status (400 for application/graphql-response+json), whichever path
// carried it. Mutations keep Yoga's executor (serial, and their selections are small);
// subscriptions run through useSharedSubscriptionEvents.
import { getOperationAST, getVariableValues, type ExecutionArgs } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { compiledOperation } from './compiled-operations.ts';

export function useCompiledQueries(): Plugin {
  return {
    onExecute({ args, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query') return;
      const compiled = compiledOperation(args.schema, args.document, args.operationName);
      if (!compiled) return;
      if (operation.variableDefinitions?.length && getVariableValues(args.schema, operation.variableDefinitions, args.variableValues ?? {}, { maxErrors: 1 }).errors) return;
      setExecuteFn((execution: ExecutionArgs) => compiled.query(execution.rootValue, execution.contextValue, execution.variableValues));
    },
  };
}
