// graphql-http's serverAudits, the reference audit of the GraphQL-over-HTTP spec, against a started
// Parley: every audit ok, warnings included. It runs twice on one server, because the second
// time the fast path knows the documents the first run sent (a parse or validation failure
// cached outside a request once answered 200 instead of 400).
import { serverAudits } from 'graphql-http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startParley, type TestServer } from './support/parley.ts';

describe('the GraphQL over HTTP audit', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startParley();
  });
  afterAll(async () => {
    await server?.stop();
  });

  for (const round of ['a fresh server', 'a server that has seen every document']) {
    it(`passes every audit, warnings included, on ${round}`, async () => {
      const failed: string[] = [];
      let ok = 0;
      for (const audit of serverAudits({ url: server.graphqlUrl, fetchFn: fetch })) {
        const result = await audit.fn();
        if (result.status === 'ok') ok++;
        else failed.push(`${result.status} ${audit.id} ${audit.name}: ${result.reason}`);
      }
      expect(failed).toEqual([]);
      expect(ok).toBeGreaterThan(50);
    });
  }
});
