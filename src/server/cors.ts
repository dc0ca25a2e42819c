// What a browser may do with Parley: which pages (origins) may read its answers, which Host names
// it answers to, and which requests never run an operation. One pure policy, applied by http.ts to
// every HTTP answer and by websocket.ts to every upgrade, so that no path has rules of its own.
//
// - CORS: the answer carries Access-Control-Allow-Origin only for an allowed origin, and always
//   `Vary: Origin` (a cache must not hand one origin's answer to another). Never
//   Access-Control-Allow-Credentials: Parley reads a bearer header, never cookies, so a page has
//   no reason to send credentials, and without that header a browser would not expose an answer
//   to a credentialed request.
// - Host: a single-user server trusts whoever reaches it. DNS rebinding points an attacker's name
//   at 127.0.0.1, which makes the attacker's page same-origin with it: the Host header (the
//   attacker's name) is then the only thing that tells the two apart.
// - CSRF: a browser sends a form-encoded, multipart or text/plain POST from any page without
//   asking first (no preflight), and Yoga would execute a form-encoded or multipart one. A POST
//   runs only with a JSON (or application/graphql) body, which a foreign page cannot send unless
//   a preflight allowed it.
import type { IncomingHttpHeaders } from 'node:http';
import type { Config } from '../config.ts';

export interface BrowserPolicy {
  /** `*`: any origin; otherwise exact origins, plus every loopback origin when `loopback`. */
  origins: '*' | { exact: ReadonlySet<string>; loopback: boolean };
  /** Host names (lower case, IPv6 without brackets) answered besides loopback; null: any Host. */
  hosts: ReadonlySet<string> | null;
}

/** What a preflight allows. The request headers are those GraphQL clients send. */
export const PREFLIGHT = {
  methods: 'GET, POST, OPTIONS',
  headers: 'accept, authorization, content-type',
  // Short enough that a changed CORS_ORIGINS applies within minutes; Chromium caps it at 7200.
  maxAgeSeconds: 600,
} as const;

/** POST bodies that can run an operation; anything else a browser may send without a preflight. */
const OPERATION_CONTENT_TYPES = new Set(['application/json', 'application/graphql']);

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '::1']);

export function browserPolicy(config: Pick<Config, 'AUTH_JWT_SECRET' | 'CORS_ORIGINS' | 'ALLOWED_HOSTS'>): BrowserPolicy {
  const singleUser = config.AUTH_JWT_SECRET === undefined;
  const listed = config.CORS_ORIGINS;
  // Defaults: with auth, a page cannot act without a token it was given, so any page may call;
  // single-user, anyone who reaches the server is the user, so only pages on this machine.
  const origins = listed === '*' || (listed === undefined && !singleUser) ? '*' : { exact: new Set(listed ?? []), loopback: listed === undefined };
  const hosts = singleUser || config.ALLOWED_HOSTS !== undefined ? new Set(config.ALLOWED_HOSTS ?? []) : null;
  return { origins, hosts };
}

/** A refusal to send as it is: status and a short text. */
export interface Refusal {
  status: number;
  message: string;
}

/** What to do with one HTTP request: headers every answer gets, and an answer when it stops here. */
export interface Decision {
  headers: Record<string, string>;
  answer?: Refusal | { status: 204 };
}

export function decideRequest(policy: BrowserPolicy, method: string | undefined, headers: IncomingHttpHeaders): Decision {
  const origin = headers.origin;
  const out: Record<string, string> = { vary: 'Origin' };
  const allowed = origin !== undefined && originAllowed(policy, origin, headers.host);
  if (allowed) out['access-control-allow-origin'] = policy.origins === '*' ? '*' : origin;
  const hostRefused = refuseHost(policy, headers.host);
  if (hostRefused) return { headers: out, answer: hostRefused };
  if (method === 'OPTIONS' && origin !== undefined && headers['access-control-request-method'] !== undefined) {
    if (!allowed) return { headers: out, answer: { status: 403, message: `origin ${origin} may not call this server (CORS_ORIGINS)` } };
    out['access-control-allow-methods'] = PREFLIGHT.methods;
    out['access-control-allow-headers'] = PREFLIGHT.headers;
    out['access-control-max-age'] = String(PREFLIGHT.maxAgeSeconds);
    return { headers: out, answer: { status: 204 } };
  }
  if (method === 'POST' && !OPERATION_CONTENT_TYPES.has(mediaType(headers['content-type']))) {
    return { headers: out, answer: { status: 415, message: 'a POST body must be application/json' } };
  }
  return { headers: out };
}

/**
 * A WebSocket handshake is not subject to CORS: the browser sends Origin and lets any page
 * connect. No Origin means no browser, which is allowed.
 */
export function refuseUpgrade(policy: BrowserPolicy, headers: IncomingHttpHeaders): Refusal | null {
  const hostRefused = refuseHost(policy, headers.host);
  if (hostRefused) return hostRefused;
  const origin = headers.origin;
  if (origin !== undefined && !originAllowed(policy, origin, headers.host)) return { status: 403, message: `origin ${origin} may not connect to this server (CORS_ORIGINS)` };
  return null;
}

function refuseHost(policy: BrowserPolicy, host: string | undefined): Refusal | null {
  if (policy.hosts === null) return null;
  const name = host === undefined ? undefined : hostName(host);
  if (name !== undefined && (LOOPBACK_HOSTS.has(name) || policy.hosts.has(name))) return null;
  return { status: 421, message: `this server does not answer to the host ${JSON.stringify(host ?? '')}: list it in ALLOWED_HOSTS` };
}

function originAllowed(policy: BrowserPolicy, origin: string, host: string | undefined): boolean {
  if (policy.origins === '*') return true;
  if (policy.origins.exact.has(origin)) return true;
  const match = /^(https?):\/\/([^/?#]+)$/.exec(origin);
  if (!match) return false;
  // Parley's own pages (GraphiQL) call it from its own origin, which the Host check vouches for.
  if (host !== undefined && match[2]!.toLowerCase() === host.toLowerCase()) return true;
  return policy.origins.loopback && LOOPBACK_HOSTS.has(hostName(match[2]!));
}

/** `Example.com:4000` → `example.com`, `[::1]:4000` → `::1`. */
function hostName(authority: string): string {
  const lower = authority.toLowerCase();
  const bracketed = /^\[([^\]]*)\](?::\d*)?$/.exec(lower);
  if (bracketed) return bracketed[1]!;
  return lower.replace(/:\d*$/, '').replace(/\.$/, '');
}

/** The media type as both browsers (safelisting) and Yoga (its first comma-separated value) read it. */
function mediaType(contentType: string | undefined): string {
  return (contentType ?? '').split(/[;,]/)[0]!.trim().toLowerCase();
}
