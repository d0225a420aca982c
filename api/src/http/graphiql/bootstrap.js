
(function () {
  'use strict';
  var config = JSON.parse(document.getElementById('sb-config').textContent);
  // GraphiQL's dialogs add a <style> element with this nonce (the CSP needs it).
  window.__webpack_nonce__ = document.currentScript.nonce;
  var assets = config.assets.map(function (a) { return new URL(a, location.href).href; });
  var loaded = {};
  var failed = [];
  var reason = null;

  function show() {
    var box = document.getElementById('sb-error');
    if (!box || reason === null) return;
    document.getElementById('sb-error-reason').textContent = reason;
    var list = document.getElementById('sb-error-urls');
    list.textContent = '';
    failed.forEach(function (url) {
      var item = document.createElement('li');
      item.textContent = url;
      list.appendChild(item);
    });
    document.getElementById('sb-origin').textContent = location.origin;
    document.getElementById('graphiql').hidden = true;
    box.hidden = false;
  }

  function fail(why, urls) {
    if (reason === null) reason = why;
    urls.forEach(function (url) { if (failed.indexOf(url) < 0) failed.push(url); });
    show();
  }

  function pending() {
    return assets.filter(function (url) { return !loaded[url]; });
  }

  function track(event) {
    var el = event.target;
    var url = el && (el.tagName === 'SCRIPT' ? el.src : el.tagName === 'LINK' ? el.href : null);
    if (!url || assets.indexOf(url) < 0) return;
    if (event.type === 'load') {
      loaded[url] = true;
    } else {
      fail('These files could not be loaded: unreachable from this browser, refused ' +
        '(a mirror on another origin must send Access-Control-Allow-Origin), or not ' +
        'matching their pinned integrity hashes.', [url]);
    }
  }
  // On document: an element's load event never reaches window.
  document.addEventListener('load', track, true);
  document.addEventListener('error', track, true);

  function start() {
    show();
    if (failed.length) return;
    if (typeof React === 'undefined' || typeof ReactDOM === 'undefined' ||
        typeof GraphiQL === 'undefined') {
      fail('GraphiQL did not load.', pending());
      return;
    }
    try {
      var root = document.getElementById('graphiql');
      var fetcher = GraphiQL.createFetcher({
        url: new URL(config.endpoint, location.href).href,
        subscriptionUrl: new URL(config.subscriptionEndpoint, location.href).href
          .replace(/^http/, 'ws'),
        fetch: function (url, opts) {
          return fetch(url, Object.assign({}, opts, { credentials: 'same-origin' }));
        },
        headers: config.headers,
        wsConnectionParams: config.wsConnectionParams
      });
      // A late start (a slow CDN) replaces the timeout's message.
      reason = null;
      document.getElementById('sb-error').hidden = true;
      root.hidden = false;
      ReactDOM.createRoot(root).render(React.createElement(GraphiQL, {
        fetcher: fetcher,
        defaultEditorToolsVisibility: true
      }));
    } catch (e) {
      fail('GraphiQL failed to start: ' + e, []);
    }
  }
  document.addEventListener('DOMContentLoaded', start);

  setTimeout(function () {
    if (!document.querySelector('#graphiql .graphiql-container')) {
      var missing = pending();
      fail(missing.length
        ? 'GraphiQL has not started after 10 seconds. Still loading or missing:'
        : 'GraphiQL has not started after 10 seconds, though its files loaded: ' +
          'the browser console tells why.', missing);
    }
  }, 10000);
})();
