/* database-unit dashboard: sign-in form and live charts (uPlot). Served by the service
 * itself (no CDN); the page's CSP allows no inline code, so everything is in this file. */
(function () {
  'use strict';

  var COLORS = ['#2563eb', '#dc2626', '#16a34a', '#9333ea', '#ea580c', '#0891b2', '#4b5563'];

  function text(el, value) {
    el.textContent = value;
    return el;
  }

  function make(tag, cls) {
    var el = document.createElement(tag);
    if (cls) {
      el.className = cls;
    }
    return el;
  }

  function errorMessage(res) {
    return res
      .json()
      .then(function (body) {
        var m = body && body.message;
        return Array.isArray(m) ? m.join('; ') : m || res.statusText;
      })
      .catch(function () {
        return res.status + ' ' + res.statusText;
      });
  }

  // --- sign-in -------------------------------------------------------------------------
  function login() {
    var form = document.getElementById('login');
    var field = document.getElementById('key');
    var error = document.getElementById('login-error');
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      error.hidden = true;
      fetch('/dashboard/login', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        credentials: 'same-origin',
        body: JSON.stringify({ key: field.value }),
      })
        .then(function (res) {
          field.value = '';
          if (res.status === 204) {
            window.location.assign('/dashboard');
            return;
          }
          return errorMessage(res).then(function (message) {
            text(error, 'Sign-in refused: ' + message);
            error.hidden = false;
          });
        })
        .catch(function (err) {
          text(error, 'Sign-in failed: ' + err.message);
          error.hidden = false;
        });
    });
  }

  // --- dashboard -----------------------------------------------------------------------
  var charts = {}; // id -> { el, plot, lines: 'a|b' }

  function chartWidth(el) {
    return Math.max(280, el.clientWidth - 16);
  }

  function build(container, chart) {
    var entry = charts[chart.id];
    var names = chart.lines.map(function (l) {
      return l.name;
    });
    if (entry && entry.lines === names.join('|')) {
      return entry;
    }
    if (entry) {
      entry.plot.destroy();
    } else {
      entry = { el: make('div', 'chart') };
      entry.el.dataset.chart = chart.id;
      entry.el.dataset.points = '0';
      container.appendChild(entry.el);
    }
    entry.lines = names.join('|');
    var series = [{}].concat(
      chart.lines.map(function (l, i) {
        return { label: l.name, stroke: COLORS[i % COLORS.length], width: 2, spanGaps: false };
      }),
    );
    entry.plot = new window.uPlot(
      {
        title: chart.title + ' (' + chart.unit + ')',
        width: chartWidth(entry.el),
        height: 220,
        series: series,
        scales:
          chart.unit === 'ratio' || chart.unit === 'recall'
            ? { x: { time: true }, y: { range: [0, 1] } }
            : { x: { time: true } },
        axes: [{}, { size: 60 }],
        hooks: {
          draw: [
            function (u) {
              // what the test (and a curious operator) can read: points actually drawn
              var n = 0;
              for (var s = 1; s < u.data.length; s += 1) {
                for (var i = 0; i < u.data[s].length; i += 1) {
                  if (u.data[s][i] !== null && u.data[s][i] !== undefined) {
                    n += 1;
                  }
                }
              }
              u.root.parentNode.dataset.points = String(n);
            },
          ],
        },
      },
      [[]].concat(
        chart.lines.map(function () {
          return [];
        }),
      ),
      entry.el,
    );
    charts[chart.id] = entry;
    return entry;
  }

  function render(view) {
    var container = document.getElementById('charts');
    var xs = view.timestamps.map(function (t) {
      return t / 1000;
    });
    view.charts.forEach(function (chart) {
      var entry = build(container, chart);
      entry.plot.setData(
        [xs].concat(
          chart.lines.map(function (l) {
            return l.values;
          }),
        ),
      );
    });
    var alerts = document.getElementById('alerts');
    alerts.replaceChildren();
    if (view.alerts.length === 0) {
      alerts.appendChild(text(make('li', 'none'), 'none'));
    }
    view.alerts.forEach(function (a) {
      var li = make('li', 'alert ' + (a.severity || 'unknown'));
      var extra = Object.keys(a.labels)
        .map(function (k) {
          return k + '=' + a.labels[k];
        })
        .join(' ');
      text(li, a.alert + (a.severity ? ' [' + a.severity + ']' : '') + (extra ? ' ' + extra : ''));
      alerts.appendChild(li);
    });
    var backups = document.getElementById('backups');
    backups.replaceChildren();
    function row(term, value) {
      backups.appendChild(text(make('dt'), term));
      backups.appendChild(text(make('dd'), value));
    }
    var b = view.backups;
    row(
      'last good backup',
      b.lastGoodAgeSeconds === null ? 'none' : Math.round(b.lastGoodAgeSeconds / 60) + ' min ago',
    );
    row('last passed validation', b.lastValidationAt || 'none');
    b.completion.forEach(function (c) {
      row('last ' + c.kind, c.succeeded ? 'succeeded' : 'FAILED');
    });
    text(
      document.getElementById('status'),
      'updated ' + new Date(view.generatedAt).toLocaleTimeString() + ' · ' + xs.length + ' samples',
    );
  }

  function dashboard() {
    var every = 5000;
    function poll() {
      fetch('/dashboard/data', { credentials: 'same-origin' })
        .then(function (res) {
          if (res.status === 401 || res.status === 403) {
            window.location.assign('/dashboard');
            return null;
          }
          if (!res.ok) {
            return errorMessage(res).then(function (m) {
              throw new Error(m);
            });
          }
          return res.json();
        })
        .then(function (view) {
          if (view) {
            every = Math.max(1000, view.sampleSeconds * 1000 || 5000);
            render(view);
          }
        })
        .catch(function (err) {
          text(document.getElementById('status'), 'update failed: ' + err.message);
        })
        .finally(function () {
          window.setTimeout(poll, every);
        });
    }
    document.getElementById('logout').addEventListener('click', function () {
      fetch('/dashboard/logout', { method: 'POST', credentials: 'same-origin' }).finally(
        function () {
          window.location.assign('/dashboard');
        },
      );
    });
    window.addEventListener('resize', function () {
      Object.keys(charts).forEach(function (id) {
        var e = charts[id];
        e.plot.setSize({ width: chartWidth(e.el), height: 220 });
      });
    });
    poll();
  }

  document.addEventListener('DOMContentLoaded', function () {
    if (document.body.dataset.page === 'login') {
      login();
    } else if (document.body.dataset.page === 'dashboard') {
      dashboard();
    }
  });
})();
