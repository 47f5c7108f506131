// Progressive enhancement only: every page works without this file.
document.addEventListener('submit', function (e) {
  var form = e.target;
  var btn = form.querySelector('button[type=submit][data-busy]');
  if (btn) { btn.disabled = true; btn.textContent = btn.getAttribute('data-busy'); }
});
