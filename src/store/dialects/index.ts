import type { DatabaseProvider, Dialect } from '../dialect.ts';
import { mysql } from './mysql.ts';
import { postgresql } from './postgresql.ts';
import { sqlite } from './sqlite.ts';

export const DIALECTS: Record<DatabaseProvider, Dialect> = { sqlite, postgresql, mysql };

export const UNSUPPORTED_URL = 'DATABASE_URL must start with file:, postgresql:// or mysql://';

export { databaseProvider } from '../../config.ts';
