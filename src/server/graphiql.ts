// The GraphiQL playground, served whole from the npm package (its scripts and styles are inlined
// in the page), so that it works with no network beyond Parley. It opens on a working pair of
// operations: send a message, then follow its reply, and shows every event of a subscription.
import { renderGraphiQL as renderPage } from '@graphql-yoga/render-graphiql';
import type { GraphiQLOptions } from 'graphql-yoga';

const SEND = `# 1. Send a message. Copy assistantMessage.id from the answer into the next tab's variables.
mutation Send {
  sendMessage(input: { content: "Hello! Who are you?" }) {
    conversation { id title }
    userMessage { id content }
    assistantMessage { id status }
  }
}
`;

const FOLLOW = `# 2. Follow the reply as it is generated. The playground lists every event received so far
# under "events", their deltas joined under "text"; the last one (done: true) carries the saved
# message.
subscription Follow($messageId: ID!) {
  messageStream(messageId: $messageId) {
    seq
    delta
    done
    status
    message { content status finishReason }
  }
}
`;

// A speech bubble, inline: a favicon from a URL would be a request off the machine.
const FAVICON = `data:image/svg+xml,${encodeURIComponent('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path d="M2 2h12v9H6l-4 3z" fill="#5b4bdb"/></svg>')}`;

export function graphiqlOptions({ auth }: { auth: boolean }): GraphiQLOptions {
  const headers = auth ? JSON.stringify({ Authorization: 'Bearer <your token>' }, null, 2) : null;
  return {
    title: 'Parley',
    favicon: FAVICON,
    defaultTabs: [
      { query: SEND, headers },
      { query: FOLLOW, variables: JSON.stringify({ messageId: '<assistantMessage.id>' }, null, 2), headers },
    ],
  };
}

// GraphiQL puts only a fetcher's latest result in its pane. Yoga's page builds the fetcher inside
// its component and takes no wrapper, so the page is patched where it hands the fetcher to
// GraphiQL: for a subscription, each result becomes every result so far, their deltas joined.
// Memoized per fetcher: a new one at each render would make GraphiQL fetch the schema again.
export const EVERY_EVENT_SCRIPT = `globalThis.parleyEveryEvent = (() => {
  const wrappers = new WeakMap();
  const isSubscription = ({ operationName }, options) => {
    const operations = (options?.documentAST?.definitions ?? []).filter((d) => d.kind === 'OperationDefinition');
    const operation = operationName ? operations.find((d) => d.name?.value === operationName) : operations[0];
    return operation?.operation === 'subscription';
  };
  const accumulate = (results) => {
    const source = results[Symbol.asyncIterator]();
    const events = [];
    let text;
    const iterator = {
      [Symbol.asyncIterator]: () => iterator,
      async next() {
        const step = await source.next();
        if (step.done) return step;
        events.push(step.value);
        for (const field of Object.values(step.value?.data ?? {})) {
          if (typeof field?.delta === 'string') text = (text ?? '') + field.delta;
        }
        return { done: false, value: text === undefined ? { events } : { text, events } };
      },
      // Straight to the source, not queued behind a pending next(): Stop ends the request at once.
      return: (value) => (source.return ? source.return(value) : Promise.resolve({ done: true, value })),
    };
    return iterator;
  };
  return (fetcher) => {
    if (!wrappers.has(fetcher)) {
      wrappers.set(fetcher, async (params, options) => {
        const result = await fetcher(params, options);
        return isSubscription(params, options) && result?.[Symbol.asyncIterator] ? accumulate(result) : result;
      });
    }
    return wrappers.get(fetcher);
  };
})();`;

// Where Yoga's component hands its fetcher to GraphiQL, in the package's minified bundle.
const FETCHER_PROP = /\bfetcher:([\w$]+)(?=,children:)/g;

/** Yoga's page with EVERY_EVENT_SCRIPT in; throws if the package's markup no longer fits the patch. */
export function withEveryEvent(page: string): string {
  const props = [...page.matchAll(FETCHER_PROP)].length;
  const patched = page.replace(FETCHER_PROP, 'fetcher:parleyEveryEvent($1)');
  const firstScript = patched.indexOf('<script>');
  if (props !== 1 || firstScript < 0) {
    throw new Error(`GraphiQL page: expected one ${FETCHER_PROP} and a <script>, found ${props} and ${firstScript < 0 ? 'none' : 'one'}; has @graphql-yoga/render-graphiql changed?`);
  }
  return `${patched.slice(0, firstScript)}<script>${EVERY_EVENT_SCRIPT}</script>\n${patched.slice(firstScript)}`;
}

// The page is 9 MB of inlined assets: built once per set of options, not once per request.
const pages = new Map<string, string>();
export function renderGraphiQL(options?: GraphiQLOptions): string {
  const key = JSON.stringify(options ?? {});
  let page = pages.get(key);
  if (page === undefined) {
    page = withEveryEvent(renderPage(options));
    if (pages.size < 8) pages.set(key, page);
  }
  return page;
}
