// The authenticator on its own: which Authorization headers it accepts, what viewer it returns and
// the reason it gives for each refusal. (test/isolation*.test.ts check the same rules end to end.)
import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuthenticator, LOCAL_USER } from '../src/auth.ts';
import { DomainError } from '../src/errors.ts';

const SECRET = 'auth-test-secret-that-is-at-least-32-characters';
const authenticate = createAuthenticator(SECRET);

function sign(claims: { sub?: string; exp?: number }, secret = SECRET, alg = 'HS256'): Promise<string> {
  const jwt = new SignJWT({}).setProtectedHeader({ alg }).setIssuedAt();
  if (claims.sub !== undefined) jwt.setSubject(claims.sub);
  if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp);
  return jwt.sign(new TextEncoder().encode(secret));
}

/** The refusal `authenticate(header)` ends with: its code and its message. */
async function refusal(header: string | null | undefined): Promise<{ code: string; message: string }> {
  const error = await authenticate(header).then(
    (viewer) => {
      throw new Error(`accepted as ${JSON.stringify(viewer)}`);
    },
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  return { code: (error as DomainError).code, message: (error as DomainError).message };
}

const REQUIRED = { code: 'UNAUTHENTICATED', message: 'a Bearer token is required' };
const INVALID = { code: 'UNAUTHENTICATED', message: 'the token is invalid' };
const EXPIRED = { code: 'UNAUTHENTICATED', message: 'the token has expired' };
const BAD_SUB = {
  code: 'UNAUTHENTICATED',
  message: "the token's sub claim must be a user id of 1 to 191 characters in Unicode NFC, without surrounding spaces, control or format characters",
};

describe('without a secret', () => {
  it('every caller is the local user, whatever it sends', async () => {
    expect(LOCAL_USER).toStrictEqual({ userId: 'local' });
    for (const secret of [undefined, '']) {
      const local = createAuthenticator(secret);
      for (const header of [undefined, null, '', 'Bearer not-a-token', `Bearer ${await sign({ sub: 'ann' })}`]) {
        expect(await local(header)).toStrictEqual({ userId: 'local' });
      }
    }
  });
});

describe('with a secret', () => {
  it('returns the sub as the user id, exactly as written, and no expiry for a token without exp', async () => {
    const viewer = await authenticate(`Bearer ${await sign({ sub: 'Ann Lee' })}`);
    expect(viewer).toStrictEqual({ userId: 'Ann Lee' });
  });

  it('returns when the token expires, in milliseconds', async () => {
    const exp = Math.floor(Date.now() / 1000) + 3600;
    expect(await authenticate(`Bearer ${await sign({ sub: 'ann', exp })}`)).toStrictEqual({ userId: 'ann', expiresAt: exp * 1000 });
  });

  it('accepts any case of "Bearer" and any whitespace around the token', async () => {
    const token = await sign({ sub: 'ann' });
    for (const header of [`bearer ${token}`, `BEARER ${token}`, `Bearer  ${token}`, `Bearer\t${token}`, `Bearer ${token} `, `Bearer ${token}\t \n`]) {
      expect(await authenticate(header), JSON.stringify(header)).toStrictEqual({ userId: 'ann' });
    }
  });

  it('requires a Bearer header with one token and nothing else', async () => {
    const token = await sign({ sub: 'ann' });
    for (const header of [undefined, null, '', 'Bearer', 'Bearer ', token, `Basic ${token}`, `XBearer ${token}`, ` Bearer ${token}`, `Bearer${token}`]) {
      expect(await refusal(header), JSON.stringify(header)).toStrictEqual(REQUIRED);
    }
  });

  it('refuses a header with more after the token', async () => {
    const token = await sign({ sub: 'ann' });
    for (const header of [`Bearer ${token} extra`, `Bearer ${token} ${token}`]) {
      expect(await refusal(header), JSON.stringify(header)).toStrictEqual(REQUIRED);
    }
  });

  it('calls a token invalid when it is not a JWT or is signed with another secret', async () => {
    expect(await refusal('Bearer not-a-token')).toStrictEqual(INVALID);
    expect(await refusal(`Bearer ${await sign({ sub: 'ann' }, 'another-secret-that-is-at-least-32-characters')}`)).toStrictEqual(INVALID);
  });

  it('calls a token invalid when it is signed with the right secret but not with HS256', async () => {
    for (const alg of ['HS384', 'HS512']) {
      expect(await refusal(`Bearer ${await sign({ sub: 'ann' }, SECRET, alg)}`), alg).toStrictEqual(INVALID);
    }
  });

  it('says an expired token has expired', async () => {
    const exp = Math.floor(Date.now() / 1000) - 60;
    expect(await refusal(`Bearer ${await sign({ sub: 'ann', exp })}`)).toStrictEqual(EXPIRED);
  });

  it.each([
    ['no sub', undefined],
    ['an empty sub', ''],
    ['a leading space', ' ann'],
    ['a trailing space', 'ann '],
    ['a control character', 'an\u0000n'],
    ['a zero-width space', 'an\u200bn'],
    ['a decomposed (non-NFC) accent', 'Jose\u0301'],
    ['192 characters', 'a'.repeat(192)],
  ])('refuses a sub with %s, and says why', async (_, sub) => {
    expect(await refusal(`Bearer ${await sign(sub === undefined ? {} : { sub })}`)).toStrictEqual(BAD_SUB);
  });

  it('accepts a sub of 191 characters and one in NFC with accents', async () => {
    for (const sub of ['a'.repeat(191), 'Jos\u00e9']) {
      expect(await authenticate(`Bearer ${await sign({ sub })}`)).toStrictEqual({ userId: sub });
    }
  });
});
