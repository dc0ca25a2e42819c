// The committed artifacts stay in step with the code: schema.graphql, the typed documents, and
// the three Prisma schemas (rendered from one base; only native column types differ).
import { readFileSync } from 'node:fs';
import { generate } from '@graphql-codegen/cli';
import { printSchema } from 'graphql';
import { describe, expect, it } from 'vitest';
import codegenConfig from '../codegen.ts';
import { baseSchemaPath, PROVIDERS, providerSchemaPath, renderPrismaSchemas } from '../scripts/render-prisma-schemas.ts';
import { buildSchema } from '../src/graphql/index.ts';

describe('committed artifacts', () => {
  it('schema.graphql is the printed Pothos schema (npm run schema:print)', () => {
    expect(readFileSync('schema.graphql', 'utf8')).toBe(`${printSchema(buildSchema())}\n`);
  });

  it('test/generated matches the operations in the tests (npm run codegen)', async () => {
    const files = (await generate({ ...codegenConfig, silent: true }, false)) as { filename: string; content: string }[];
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(readFileSync(file.filename, 'utf8'), file.filename).toBe(file.content);
  });

  it('the SQLite, PostgreSQL and MySQL Prisma schemas are rendered from prisma/schema.base.prisma (npm run schema:prisma)', () => {
    const rendered = renderPrismaSchemas(readFileSync(baseSchemaPath, 'utf8'));
    for (const provider of PROVIDERS) {
      expect(readFileSync(providerSchemaPath(provider), 'utf8'), `prisma/${provider}/schema.prisma`).toBe(rendered[provider]);
    }
    expect(rendered.sqlite).toMatch(/model Message \{/);
  });

  it('the contract fields exist with their argument names', () => {
    const schema = buildSchema();
    const args = (type: string, field: string) =>
      (schema.getType(type) as import('graphql').GraphQLObjectType).getFields()[field]?.args.map((a) => `${a.name}:${a.type}${a.defaultValue !== undefined ? `=${a.defaultValue}` : ''}`);
    expect(args('Query', 'conversation')).toEqual(['id:ID!']);
    // Backward paging (last/before) is added beside the contract's arguments.
    expect(args('Query', 'conversations')).toEqual(expect.arrayContaining(['after:String', 'archived:Boolean=false', 'first:Int']));
    expect(args('Query', 'history')?.sort()).toEqual(['conversationId:ID!', 'limit:Int=20']);
    expect(args('Conversation', 'messages')?.sort()).toEqual(['after:String', 'before:String', 'first:Int', 'last:Int']);
    expect(args('Mutation', 'createConversation')).toEqual(['input:CreateConversationInput']);
    expect(args('Mutation', 'updateConversation')).toEqual(['input:UpdateConversationInput!']);
    expect(args('Mutation', 'deleteConversation')).toEqual(['id:ID!']);
    expect(args('Mutation', 'addMessage')).toEqual(['input:AddMessageInput!']);
    expect(args('Mutation', 'clearMessages')).toEqual(['conversationId:ID!']);
    const fields = (type: string) => Object.keys((schema.getType(type) as import('graphql').GraphQLObjectType).getFields()).sort();
    expect(fields('Conversation')).toEqual(expect.arrayContaining(['archived', 'createdAt', 'id', 'messageCount', 'messages', 'title', 'updatedAt']));
    expect(fields('Message')).toEqual(expect.arrayContaining(['content', 'conversation', 'createdAt', 'id', 'metadata', 'role', 'tokenCount']));
    expect(fields('ChatMessage')).toEqual(['content', 'role']);
  });
});
