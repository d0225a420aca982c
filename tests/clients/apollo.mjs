// Apollo Client 3, as an app would set it up: HttpLink for queries and
// mutations, GraphQLWsLink (graphql-ws, graphql-transport-ws) for
// subscriptions, chosen with `split`; InMemoryCache; default options.
// A customer and an agent, each with their own client, do the whole chat
// in chat.mjs.
// Run by api/tests/clients.rs; needs SWITCHBOARD_URL, CUSTOMER_TOKEN, AGENT_TOKEN.
import WebSocket from 'ws';
import { ApolloClient, HttpLink, InMemoryCache, gql, split } from '@apollo/client/core/index.js';
import { loadDevMessages, loadErrorMessages } from '@apollo/client/dev/index.js';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions/index.js';
import { getMainDefinition } from '@apollo/client/utilities/index.js';
import { createClient } from 'graphql-ws';
import { runChat } from './chat.mjs';

// Apollo's warnings and errors in words instead of links (nothing else changes).
loadDevMessages();
loadErrorMessages();

await runChat({
  name: 'apollo',
  document: gql,

  describe(e) {
    if (!e || e.name !== 'ApolloError') return undefined;
    const parts = [e.message];
    const net = e.networkError;
    if (net) {
      parts.push(`network error: ${net.message}`);
      if (net.statusCode !== undefined) parts.push(`HTTP ${net.statusCode}`);
      if (net.result !== undefined) parts.push(`body ${JSON.stringify(net.result)}`);
      else if (net.bodyText !== undefined) parts.push(`body ${net.bodyText}`);
    }
    if (e.graphQLErrors?.length) parts.push(`GraphQL errors ${JSON.stringify(e.graphQLErrors)}`);
    if (e.protocolErrors?.length) parts.push(`protocol errors ${JSON.stringify(e.protocolErrors)}`);
    return parts.join('; ');
  },

  /** One person's Apollo Client, with their token. */
  client(token, { httpUrl, wsUrl }) {
    const wsClient = createClient({
      url: wsUrl,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${token}` },
    });
    const link = split(
      ({ query }) => {
        const definition = getMainDefinition(query);
        return definition.kind === 'OperationDefinition' && definition.operation === 'subscription';
      },
      new GraphQLWsLink(wsClient),
      new HttpLink({ uri: httpUrl, headers: { authorization: `Bearer ${token}` } }),
    );
    const client = new ApolloClient({ link, cache: new InMemoryCache() });
    return {
      wsClient,
      async query(query, variables) {
        return (await client.query({ query, variables })).data;
      },
      async mutate(mutation, variables) {
        return (await client.mutate({ mutation, variables })).data;
      },
      subscribe(query, variables, sink) {
        const subscription = client.subscribe({ query, variables }).subscribe(sink);
        return () => subscription.unsubscribe();
      },
      async close() {
        client.stop();
        await wsClient.dispose();
      },
    };
  },
});
