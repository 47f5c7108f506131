// The operator console made live: progressive enhancement only (the page
// works without it). On every change to the queue the first page's table is
// fetched again (server-rendered, from the cache) and swapped in; a taken
// order's row disappears at once.
(function () {
  var box = document.getElementById('queue-box');
  if (!box || !window.EventSource || !window.fetch) return;
  // Only the first page is live: a later page keeps its place.
  if (/[?&]cursor=/.test(location.search)) return;
  var pending = null;
  function refresh() {
    if (pending) return;
    pending = setTimeout(function () {
      pending = null;
      var q = location.search ? location.search + '&' : '?';
      fetch('/mes' + q + 'fragment=queue', { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) box.innerHTML = html; })
        .catch(function () {});
    }, 150);
  }
  function gone(e) {
    try {
      var c = JSON.parse(e.data);
      var row = box.querySelector('tr[data-order="' + c.order_id + '"]');
      if (row) row.remove();
    } catch (_) {}
    refresh();
  }
  var es = new EventSource('/mes/api/queue/events');
  es.addEventListener('confirmed', refresh);
  es.addEventListener('released', refresh);
  es.addEventListener('reassigned', refresh);
  es.addEventListener('resync', refresh);
  es.addEventListener('taken', gone);
  // After a reconnect, changes may have been missed while away.
  var connected = 0;
  es.addEventListener('ready', function () {
    if (connected++) refresh();
    // Says the console hears changes now (and how many times it connected).
    document.documentElement.setAttribute('data-live-connected', String(connected));
  });
  document.documentElement.setAttribute('data-live', '1');
})();
