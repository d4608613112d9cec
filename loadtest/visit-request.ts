import type { CannonOptions } from './cannon.js';
import type { VisitResult } from './invariants.js';

export interface VisitResponse extends VisitResult {
  /** Time from sending to the response, in ms (autocannon keeps one request in flight per connection). */
  ms: number;
  /** When the response arrived (performance.now()). */
  receivedAt: number;
  retryAfter?: string;
  /** nginx's $request_id, echoed in X-Request-Id: the key of this visit's idempotency record. */
  requestId?: string;
}

type Request = NonNullable<CannonOptions['requests']>[number];

/**
 * The counting visit every accuracy and chaos run sends: `GET /` asking for
 * JSON, each response recorded with its status, visitor number, replica,
 * latency, Retry-After and request id.
 */
export function visitRequest(record: (response: VisitResponse) => void): Request {
  return {
    method: 'GET',
    path: '/',
    headers: { accept: 'application/json' },
    setupRequest: (request, context) => {
      (context as { sentAt?: number }).sentAt = performance.now();
      return request;
    },
    onResponse: (status, body, context, headers) => {
      const now = performance.now();
      let count: number | undefined;
      try {
        count = (JSON.parse(body) as { count?: number }).count;
      } catch {
        // a non-JSON body (an nginx error page): no number
      }
      // Raw header names, as the server spelled them.
      const header = (name: string) => {
        const value = headers?.[name] ?? headers?.[name.toLowerCase()];
        return typeof value === 'string' ? value : undefined;
      };
      record({
        status,
        count,
        replica: header('X-Replica'),
        retryAfter: header('Retry-After'),
        requestId: header('X-Request-Id'),
        ms: now - ((context as { sentAt?: number }).sentAt ?? now),
        receivedAt: now,
      });
    },
  };
}
