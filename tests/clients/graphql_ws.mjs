// graphql-ws's own client (graphql-transport-ws) with its defaults: queries,
// mutations and subscriptions all go over the socket, which it opens lazily
// and closes when nothing runs. A customer and an agent, each with their
// own client, do the whole chat in chat.mjs.
// Run by api/tests/clients.rs; needs SWITCHBOARD_URL, CUSTOMER_TOKEN, AGENT_TOKEN.
import WebSocket from 'ws';
import { createClient } from 'graphql-ws';
import { runChat } from './chat.mjs';

await runChat({
  name: 'graphql-ws',
  // The documents stay strings: graphql-ws sends them as they are.
  document: (source) => source,

  describe(e) {
    if (e && typeof e === 'object' && 'code' in e && 'reason' in e) {
      return `socket closed: code ${e.code}${e.reason ? ` (${e.reason})` : ''}`;
    }
    // A query's or mutation's result with errors (see `execute`).
    if (e && typeof e === 'object' && !Array.isArray(e) && e.errors) return `GraphQL errors ${JSON.stringify(e.errors)}`;
    return undefined;
  },

  /** One person's graphql-ws client, with their token. */
  client(token, { wsUrl }) {
    const client = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    /** A query or mutation: its one result. */
    const execute = (query, variables) =>
      new Promise((resolve, reject) => {
        let result;
        client.subscribe(
          { query, variables },
          {
            next: (r) => {
              result = r;
            },
            error: reject,
            complete: () => {
              if (!result) reject(new Error('completed without a result'));
              else if (result.errors?.length) reject(result);
              else resolve(result.data);
            },
          },
        );
      });
    return {
      wsClient: client,
      query: execute,
      mutate: execute,
      subscribe: (query, variables, sink) => client.subscribe({ query, variables }, sink),
      async close() {
        await client.dispose();
      },
    };
  },
});
