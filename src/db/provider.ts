import path from 'node:path';

export type DatabaseProvider = 'sqlite' | 'postgresql' | 'mysql';

/** Which database a DATABASE_URL names, or undefined for an unsupported scheme. */
export function databaseProvider(url: string): DatabaseProvider | undefined {
  if (url.startsWith('file:')) return 'sqlite';
  if (/^postgres(ql)?:\/\//.test(url)) return 'postgresql';
  if (/^(mysql|mariadb):\/\//.test(url)) return 'mysql';
  return undefined;
}

/** The absolute path of a `file:` URL, relative paths taken from the working directory. */
export function sqliteFilePath(url: string): string {
  const file = decodeURIComponent(url.slice('file:'.length).replace(/^\/\/(?=\/)/, '').split('?')[0] ?? '');
  return path.resolve(file);
}

export function migrationsDir(provider: DatabaseProvider): string {
  return path.resolve(import.meta.dirname, '../../prisma', provider, 'migrations');
}
