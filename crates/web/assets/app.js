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

// A model's picture that cannot be shown (not rendered yet, or gone) is
// removed rather than left as a broken image: `<img data-optional>`. The
// error event does not bubble, so it is caught on its way down; pictures that
// failed before this script ran are asked for once more to be caught too.
document.addEventListener('error', function (e) {
  var img = e.target;
  if (img && img.tagName === 'IMG' && img.hasAttribute('data-optional') && img.parentNode) {
    img.parentNode.removeChild(img);
  }
}, true);
Array.prototype.forEach.call(document.querySelectorAll('img[data-optional]'), function (img) {
  if (img.complete && img.naturalWidth === 0) { img.src = img.src; }
});
