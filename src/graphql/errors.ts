// Expected failures: GraphQL errors with a stable `extensions.code`. Anything else that reaches
// the client is masked by Yoga as an internal error.
import { GraphQLError } from 'graphql';

export type ErrorCode = 'NOT_FOUND' | 'BAD_USER_INPUT' | 'UNAUTHENTICATED';

export class ParleyError extends GraphQLError {
  constructor(
    readonly code: ErrorCode,
    message: string,
  ) {
    super(message, { extensions: { code } });
  }
}

export const notFound = (what: string) => new ParleyError('NOT_FOUND', `${what} not found`);

/** Invalid input; `field` is the argument path the client sent, e.g. `input.title`. */
export const badInput = (field: string, problem: string) => new ParleyError('BAD_USER_INPUT', `${field}: ${problem}`);

export const unauthenticated = (reason: string) => new ParleyError('UNAUTHENTICATED', reason);
