// On-screen keypad for the kiosk: big buttons that type into the field named by data-for.
(function () {
  document.querySelectorAll('.keypad').forEach(function (pad) {
    var field = document.getElementById(pad.getAttribute('data-for'));
    pad.addEventListener('click', function (e) {
      var key = e.target.getAttribute('data-key');
      if (!key || !field) return;
      e.preventDefault();
      if (key === 'del') field.value = field.value.slice(0, -1);
      else if (key === 'clr') field.value = '';
      else field.value += key;
    });
  });
})();
