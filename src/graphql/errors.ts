// Maps domain errors to GraphQL errors with `extensions.code`, and masks everything unexpected.
import { PothosValidationError } from '@pothos/core';
import { GraphQLError } from 'graphql';
import { maskError as yogaMaskError } from 'graphql-yoga';
import { DomainError } from '../errors.ts';
import type { Logger } from '../logger.ts';

/**
 * Yoga's `maskError`: a domain error becomes a GraphQL error carrying its code, and for bad input
 * the argument path at fault as `field` (at the same path and locations); validation errors of Pothos are BAD_USER_INPUT; GraphQL's own refusals pass
 * unchanged; other errors are logged and masked by Yoga.
 */
export function errorMasker(logger: Logger) {
  return (error: unknown, message: string): Error => {
    const original = error instanceof GraphQLError ? error.originalError : error;
    if (original instanceof DomainError) {
      const located = error instanceof GraphQLError ? error : undefined;
      return new GraphQLError(original.message, {
        nodes: located?.nodes,
        source: located?.source,
        positions: located?.positions,
        path: located?.path,
        extensions: original.field === undefined ? { code: original.code } : { code: original.code, field: original.field },
      });
    }
    if (original instanceof PothosValidationError) {
      return new GraphQLError(original.message, { extensions: { code: 'BAD_USER_INPUT' } });
    }
    if (!isGraphQLRefusal(error)) logger.error({ err: original }, 'unexpected error while executing an operation');
    // Never with the original error attached (Yoga's development mode adds its stack).
    return yogaMaskError(error, message, false);
  };
}

/**
 * graphql-js' own refusals of a client's operation (syntax, validation, variables that do not
 * coerce, the armor limits) are GraphQL errors all the way down; they are not the server's fault.
 */
function isGraphQLRefusal(error: unknown): boolean {
  let current = error;
  while (current instanceof GraphQLError) {
    if (!current.originalError) return true;
    current = current.originalError;
  }
  return false;
}
