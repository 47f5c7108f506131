// Progressive enhancement only: every page works without this file.
document.addEventListener('submit', function (e) {
  var form = e.target;
  var btn = form.querySelector('button[type=submit][data-busy]');
  if (btn) { btn.disabled = true; btn.textContent = btn.getAttribute('data-busy'); }
});

// Managers: orders at risk or overdue, announced on every page (see /crm/overdue).
document.addEventListener('DOMContentLoaded', function () {
  var banner = document.getElementById('sla-banner');
  if (!banner || !window.fetch) { return; }
  fetch(banner.getAttribute('data-src'), { credentials: 'same-origin' })
    .then(function (r) { return r.ok ? r.json() : null; })
    .then(function (sla) {
      if (!sla || !sla.banner) { return; }
      var a = document.createElement('a');
      a.href = sla.href;
      a.textContent = sla.banner;
      banner.appendChild(a);
      banner.hidden = false;
    })
    .catch(function () {});
});
