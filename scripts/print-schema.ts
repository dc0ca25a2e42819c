// npm run schema:print — writes schema.graphql from the Pothos schema (sorted).
// test/schema.test.ts fails while the committed file differs from this output.
import { writeFileSync } from 'node:fs';
import { printSchema } from 'graphql';
import { buildSchema } from '../src/graphql/index.ts';

writeFileSync('schema.graphql', `${printSchema(buildSchema())}\n`);
console.log('wrote schema.graphql');
