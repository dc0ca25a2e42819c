// Expected failures, raised below the GraphQL layer. Each carries a stable code; the GraphQL
// layer turns them into errors with `extensions.code` (src/graphql/errors.ts). Anything else that
// reaches a client is masked as an internal error.

export type ErrorCode = 'NOT_FOUND' | 'BAD_USER_INPUT' | 'UNAUTHENTICATED';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** For BAD_USER_INPUT: the argument path at fault, e.g. `input.title`. */
    readonly field?: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new DomainError('NOT_FOUND', `${what} not found`);

/** Invalid input; `field` is the argument path the client sent, e.g. `input.title`. */
export const badInput = (field: string, problem: string) => new DomainError('BAD_USER_INPUT', `${field}: ${problem}`, field);

export const unauthenticated = (reason: string) => new DomainError('UNAUTHENTICATED', reason);

/** The store refused a row because another one already holds its unique key. */
export class DuplicateKeyError extends Error {
  override name = 'DuplicateKeyError';
  constructor(
    /** Which key: e.g. `clientMessageId`. */
    readonly key: string,
    options?: { cause?: unknown },
  ) {
    super(`another row already holds this ${key}`, options);
  }
}
