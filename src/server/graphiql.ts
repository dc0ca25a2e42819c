// The GraphiQL playground, served whole from the npm package (its scripts and styles are inlined
// in the page), so that it works with no network beyond Parley. It opens on a working pair of
// operations: send a message, then follow its reply.
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

const FOLLOW = `# 2. Follow the reply as it is generated. GraphiQL shows the latest event; the terminal one
# (done: true) carries the saved message.
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

// The page is 9 MB of inlined assets: built once per set of options, not once per request.
const pages = new Map<string, string>();
export function renderGraphiQL(options?: GraphiQLOptions): string {
  const key = JSON.stringify(options ?? {});
  let page = pages.get(key);
  if (page === undefined) {
    page = renderPage(options);
    if (pages.size < 8) pages.set(key, page);
  }
  return page;
}
