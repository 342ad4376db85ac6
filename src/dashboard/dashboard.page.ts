/** The two HTML pages: no inline script or style (the CSP forbids both), assets from the service. */

const head = (title: string): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>${title}</title>
<link rel="stylesheet" href="/dashboard/assets/uPlot.min.css">
<link rel="stylesheet" href="/dashboard/assets/dashboard.css">
<script src="/dashboard/assets/uPlot.iife.min.js" defer></script>
<script src="/dashboard/assets/dashboard.js" defer></script>
</head>`;

export function loginPage(): string {
  return `${head('database-unit · sign in')}
<body data-page="login">
<main class="login">
<h1>database-unit</h1>
<form id="login" autocomplete="off">
<label for="key">API key with scope <code>ops:read</code></label>
<input id="key" name="key" type="password" required autofocus>
<button type="submit">Sign in</button>
<p id="login-error" role="alert" hidden></p>
</form>
</main>
</body>
</html>`;
}

export function dashboardPage(keyId: string): string {
  return `${head('database-unit · dashboard')}
<body data-page="dashboard">
<header>
<h1>database-unit</h1>
<span id="status">loading…</span>
<span class="who">signed in as <b>${escapeHtml(keyId)}</b></span>
<button id="logout" type="button">Sign out</button>
</header>
<main>
<section id="charts" class="charts"></section>
<section class="panels">
<div class="panel"><h2>Active alerts</h2><ul id="alerts"><li>none</li></ul></div>
<div class="panel"><h2>Backups</h2><dl id="backups"></dl></div>
</section>
</main>
</body>
</html>`;
}

export function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}
