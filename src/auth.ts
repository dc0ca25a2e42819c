// Who is asking: `Authorization: Bearer <JWT>` (HS256, AUTH_JWT_SECRET), `sub` = user id.
// Without a secret Parley is single-user and every caller is `local`.
import { errors, jwtVerify } from 'jose';
import { unauthenticated } from './errors.ts';

export interface Viewer {
  userId: string;
  /** When the token it came with expires (ms since the epoch); a connection ends then. */
  expiresAt?: number;
}

export const LOCAL_USER: Viewer = { userId: 'local' };

// The user id is stored in VARCHAR(191) columns.
const MAX_USER_ID_LENGTH = 191;
// Some databases ignore trailing spaces in comparisons: `ann` and `ann ` must not be one user.
const USER_ID = new RegExp(`^(?=.{1,${MAX_USER_ID_LENGTH}}$)[^\\s\\p{Cc}](?:[^\\p{Cc}]*[^\\s\\p{Cc}])?$`, 'u');
// Invisible format characters (zero-width spaces, direction marks) and lone surrogates would make
// ids that look alike, or cannot be stored, into different users.
const INVISIBLE = /[\p{Cf}\p{Cs}]/u;

/** Whether `sub` can be a user id as it stands: one spelling per user, nothing hidden. */
function isUserId(sub: string): boolean {
  return USER_ID.test(sub) && !INVISIBLE.test(sub) && sub.normalize('NFC') === sub;
}

export type Authenticate = (authorization: string | null | undefined) => Promise<Viewer>;

export function createAuthenticator(secret: string | undefined): Authenticate {
  if (!secret) return async () => LOCAL_USER;
  const key = new TextEncoder().encode(secret);
  return async (authorization) => {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
    if (!match?.[1]) throw unauthenticated('a Bearer token is required');
    try {
      const { payload } = await jwtVerify(match[1], key, { algorithms: ['HS256'] });
      const sub = payload.sub;
      if (typeof sub !== 'string' || !isUserId(sub)) {
        throw unauthenticated(
          `the token's sub claim must be a user id of 1 to ${MAX_USER_ID_LENGTH} characters in Unicode NFC, without surrounding spaces, control or format characters`,
        );
      }
      return typeof payload.exp === 'number' ? { userId: sub, expiresAt: payload.exp * 1000 } : { userId: sub };
    } catch (error) {
      if (error instanceof errors.JWTExpired) throw unauthenticated('the token has expired');
      if (error instanceof errors.JOSEError) throw unauthenticated('the token is invalid');
      throw error;
    }
  };
}
