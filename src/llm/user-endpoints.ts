// Connections to the endpoints users choose (a custom `baseUrl`). A user must not aim the server
// at itself or at its network: loopback, private, link-local (cloud metadata), unique-local,
// multicast and other special addresses are refused. The check runs in the agents, on the address
// each connection is about to use (after DNS resolution, on every connect), so a name that
// resolves elsewhere at connect time than it did when saved (DNS rebinding) gains nothing.
// LLM_ALLOWED_HOSTS names the exceptions. Server-configured endpoints never come through here.
import dns from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import ipaddr from 'ipaddr.js';
import type { AllowedHosts } from '../config.ts';
import { AGENT_OPTIONS, createNodeFetch, type Fetch } from './node-fetch.ts';

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** Resolves a host name to all its addresses, as dns.lookup with `all: true` does. */
export type Resolve = (hostname: string, callback: (error: NodeJS.ErrnoException | null, addresses: dns.LookupAddress[]) => void) => void;

const systemResolve: Resolve = (hostname, callback) => dns.lookup(hostname, { all: true, order: 'verbatim' }, callback);

/** A connection refused because of the address it would reach. */
export class ForbiddenAddressError extends Error {
  override name = 'ForbiddenAddressError';
  readonly code = 'ERR_FORBIDDEN_ADDRESS';
}

// ::/96 (IPv4-compatible, deprecated) carries an IPv4 address, yet the library counts it unicast
// (all but :: and ::1, which it names).
const IPV4_COMPATIBLE: [Address, number] = ipaddr.parseCIDR('::/96');

export class UserEndpoints {
  /** The fetch for user endpoints: its connections are all checked, and it never falls back. */
  readonly fetch: Fetch;
  private readonly names: Set<string>;
  private readonly networks: [Address, number][];

  constructor(
    allowed: AllowedHosts,
    private readonly resolve: Resolve = systemResolve,
  ) {
    this.names = new Set(allowed.names);
    this.networks = allowed.networks.map((cidr) => ipaddr.parseCIDR(cidr));
    const guard = this;
    const lookup: net.LookupFunction = (hostname, options, callback) => this.lookup(hostname, options, callback);
    const options = { ...AGENT_OPTIONS, lookup };
    // Node skips `lookup` for a host that is an IP address already: those are checked here.
    class HttpAgent extends http.Agent {
      override createConnection(connect: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
        return guard.refuseLiteral(connect.host, callback) ? null : super.createConnection(connect, callback);
      }
    }
    class HttpsAgent extends https.Agent {
      override createConnection(connect: https.RequestOptions, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
        return guard.refuseLiteral(connect.host, callback) ? null : super.createConnection(connect, callback);
      }
    }
    this.fetch = createNodeFetch({ 'http:': new HttpAgent(options), 'https:': new HttpsAgent(options) }, { fallBack: false });
  }

  /**
   * Why the host of `url`, as written, cannot be called (e.g. `a loopback address`), or undefined
   * when it can or when only its resolution can tell.
   */
  literalRefusal(url: string): string | undefined {
    const host = new URL(url).hostname.replace(/^\[(.*)\]$/, '$1');
    return net.isIP(host) ? this.addressRefusal(host) : undefined;
  }

  /** Why a connection to `address` is refused (its kind), or undefined when it is allowed. */
  addressRefusal(address: string): string | undefined {
    let parsed: Address = ipaddr.parse(address);
    if (this.inAllowedNetwork(parsed)) return undefined;
    if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
      parsed = (parsed as ipaddr.IPv6).toIPv4Address();
      if (this.inAllowedNetwork(parsed)) return undefined;
    }
    const range = parsed.range();
    if (range !== 'unicast') return RANGE_NAMES[range] ?? `a special-purpose address (${range})`;
    return parsed.kind() === 'ipv6' && parsed.match(IPV4_COMPATIBLE) ? 'an IPv4-compatible address' : undefined;
  }

  private inAllowedNetwork(address: Address): boolean {
    return this.networks.some((network) => network[0].kind() === address.kind() && address.match(network));
  }

  private lookup(hostname: string, options: dns.LookupOptions, callback: Parameters<net.LookupFunction>[2]): void {
    this.resolve(hostname, (error, addresses) => {
      if (error) return callback(error, '');
      const name = hostname.toLowerCase().replace(/\.$/, '');
      const family = options.family === 4 || options.family === 'IPv4' ? 4 : options.family === 6 || options.family === 'IPv6' ? 6 : 0;
      const candidates = addresses.filter((a) => family === 0 || a.family === family);
      const usable = this.names.has(name) ? candidates : candidates.filter((a) => this.addressRefusal(a.address) === undefined);
      if (usable.length === 0) {
        const refused = candidates.map((a) => `${a.address} (${this.addressRefusal(a.address)})`).join(', ');
        return callback(new ForbiddenAddressError(`${hostname} resolves only to addresses user endpoints may not reach: ${refused || 'none'}`), '');
      }
      if (options.all) callback(null, usable);
      else callback(null, usable[0]!.address, usable[0]!.family);
    });
  }

  /** Fails the connection (through `callback`) when `host` is a forbidden IP address. */
  private refuseLiteral(host: string | null | undefined, callback: ((err: Error | null, stream: Duplex) => void) | undefined): boolean {
    if (!host || !net.isIP(host)) return false;
    const refusal = this.addressRefusal(host);
    if (refusal === undefined) return false;
    const error = new ForbiddenAddressError(`${host} is ${refusal}, which user endpoints may not reach`);
    if (!callback) throw error;
    process.nextTick(() => callback(error, undefined as never));
    return true;
  }
}

const RANGE_NAMES: Record<string, string> = {
  unspecified: 'an unspecified address',
  broadcast: 'the broadcast address',
  multicast: 'a multicast address',
  linkLocal: 'a link-local address',
  loopback: 'a loopback address',
  carrierGradeNat: 'a shared (CGNAT) address',
  private: 'a private address',
  uniqueLocal: 'a unique-local address',
  ipv4Mapped: 'an IPv4-mapped address',
  reserved: 'a reserved address',
};
