// `npm run db:deploy`: applies pending migrations to DATABASE_URL, for deployments that start
// Parley with MIGRATE_ON_START=false.
import { ConfigError, loadConfig } from '../config.ts';
import { applyMigrations } from './migrate.ts';

try {
  const config = loadConfig();
  const applied = await applyMigrations(config.DATABASE_URL, (msg) => console.log(msg));
  console.log(applied.length === 0 ? 'No pending migrations.' : `Applied ${applied.length} migration(s).`);
} catch (error) {
  console.error(error instanceof ConfigError ? error.message : `Migration failed: ${error instanceof Error ? error.message : error}`);
  process.exit(1);
}
