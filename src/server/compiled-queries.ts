// Envelop plugin: queries execute compiled by graphql-jit on every path (the fast path, Yoga's
// HTTP and SSE, graphql-ws), planned once per document instead of walked at every request.
// Variables that do not coerce stop a compiled query before anything runs; the operation then
// goes to the executor it would have had (Yoga's), which refuses it in its own words and with its
// status (400 for application/graphql-response+json), whichever path carried it. Mutations keep
// Yoga's executor (serial, and their selections are small); subscriptions run through
// useSharedSubscriptionEvents.
import { getOperationAST, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { compiledOperation } from './compiled-operations.ts';

export function useCompiledQueries(): Plugin {
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query') return;
      const compiled = compiledOperation(args.schema, args.document, args.operationName);
      if (!compiled) return;
      setExecuteFn((execution: ExecutionArgs) => {
        const result = compiled.query(execution.rootValue, execution.contextValue, execution.variableValues);
        return result instanceof Promise ? result.then((settled) => (refusedVariables(settled) ? executeFn(execution) : settled)) : refusedVariables(result) ? executeFn(execution) : result;
      });
    },
  };
}

/** graphql-jit's answer to variables that do not coerce: errors, and no `data` at all. */
function refusedVariables(result: ExecutionResult): boolean {
  return result.errors !== undefined && !('data' in result);
}
