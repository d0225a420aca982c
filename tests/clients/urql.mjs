// urql with its defaults, as its docs set it up: `createClient` with the
// document cache and the fetch exchange (queries go as GET while the URL is
// short enough, mutations as POST), plus `subscriptionExchange` over
// graphql-ws (graphql-transport-ws). A customer and an agent, each with
// their own client, do the whole chat in chat.mjs.
// Run by api/tests/clients.rs; needs SWITCHBOARD_URL, CUSTOMER_TOKEN, AGENT_TOKEN.
import WebSocket from 'ws';
import { cacheExchange, createClient, fetchExchange, gql, subscriptionExchange } from '@urql/core';
import { createClient as createWsClient } from 'graphql-ws';
import { runChat } from './chat.mjs';

await runChat({
  name: 'urql',
  document: gql,

  describe(e) {
    if (!e || e.name !== 'CombinedError') return undefined;
    const parts = [e.message];
    const response = e.response;
    if (response && typeof response.status === 'number') {
      // urql sends queries as GET (variables in the URL), everything else as POST.
      const method = response.url.includes('?') ? 'GET' : 'POST';
      parts.push(`HTTP ${response.status} ${response.statusText ?? ''} for ${method} ${response.url}`);
    }
    if (e.networkError && e.networkError.message !== e.message) parts.push(`network error: ${e.networkError.message}`);
    if (e.graphQLErrors?.length) {
      parts.push(`GraphQL errors ${JSON.stringify(e.graphQLErrors.map((g) => ({ message: g.message, extensions: g.extensions })))}`);
    }
    return parts.join('; ');
  },

  /** One person's urql client, with their token. */
  client(token, { httpUrl, wsUrl }) {
    const wsClient = createWsClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    const client = createClient({
      url: httpUrl,
      fetchOptions: { headers: { authorization: `Bearer ${token}` } },
      exchanges: [
        cacheExchange,
        fetchExchange,
        subscriptionExchange({
          forwardSubscription(request) {
            const input = { ...request, query: request.query || '' };
            return {
              subscribe(sink) {
                const unsubscribe = wsClient.subscribe(input, sink);
                return { unsubscribe };
              },
            };
          },
        }),
      ],
    });
    const unwrap = (result) => {
      if (result.error) throw result.error;
      return result.data;
    };
    return {
      wsClient,
      async query(query, variables) {
        return unwrap(await client.query(query, variables).toPromise());
      },
      async mutate(mutation, variables) {
        return unwrap(await client.mutation(mutation, variables).toPromise());
      },
      subscribe(query, variables, sink) {
        // urql ends a subscription by delivering a result with `error` (or
        // by the source completing, which it does not report here).
        const subscription = client.subscription(query, variables).subscribe((result) => {
          if (result.error) sink.error(result.error);
          else if (result.data) sink.next({ data: result.data });
        });
        return () => subscription.unsubscribe();
      },
      async close() {
        await wsClient.dispose();
      },
    };
  },
});
