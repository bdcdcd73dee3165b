// Live dashboard: the server says "changed" over server-sent events; fetch the fresh fragment.
// Also asks for confirmation on forms marked data-confirm.
(function () {
  var live = document.querySelector('[data-live]');
  if (live && window.EventSource) {
    var pending = false;
    var refresh = function () {
      if (pending) return;
      pending = true;
      fetch(live.getAttribute('data-live'), { credentials: 'same-origin' })
        .then(function (r) { return r.ok ? r.text() : null; })
        .then(function (html) { if (html !== null) live.innerHTML = html; })
        .finally(function () { pending = false; });
    };
    var es = new EventSource('/events');
    es.addEventListener('changed', refresh);
    // After a dropped connection, catch up on anything missed.
    es.addEventListener('open', refresh);
  }
  document.addEventListener('submit', function (e) {
    var msg = e.target.getAttribute('data-confirm');
    if (msg && !window.confirm(msg)) e.preventDefault();
  });
})();
