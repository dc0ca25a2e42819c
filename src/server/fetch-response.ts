// A Fetch API Response (Yoga's answer) written to node's response whole, with its length.
import type { ServerResponse } from 'node:http';

export async function sendFetchResponse(res: ServerResponse, response: Response): Promise<void> {
  const answer = Buffer.from(await response.arrayBuffer());
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  headers['content-length'] = String(answer.length);
  res.writeHead(response.status, headers).end(answer);
}
