// A real SMTP server for the console's browser tests, as tests/api/smtp.rs is for the
// API's: Debian's python3-aiosmtpd on a loopback port with its Mailbox handler (every
// accepted message written to a Maildir), and what it received, parsed by Python's own
// `email` package (so no mail parser is added to node_modules).
//
//   const smtp = await startSmtp();            // { port, url, dir, messages(), waitFor(), stop() }
//   startServer({ SAMPLIT_SMTP_URL: smtp.url, SAMPLIT_MAIL_FROM: 'Samplit <noreply@samplit.test>', ... })
//   const m = await smtp.waitFor((m) => m.to === 'ada@example.com');
//   linkToken(m, `${base}/app/reset-password`)
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './harness.mjs';

const PYTHON = '/usr/bin/python3';

// Reads every message of a Maildir's new/ folder, oldest first, as JSON.
const PARSE = `
import email, email.policy, json, os, sys
folder = sys.argv[1]
out = []
names = os.listdir(folder) if os.path.isdir(folder) else []
for name in sorted(names, key=lambda n: os.path.getmtime(os.path.join(folder, n))):
    with open(os.path.join(folder, name), 'rb') as f:
        m = email.message_from_binary_file(f, policy=email.policy.default)
    text = m.get_body(('plain',))
    html = m.get_body(('html',))
    out.append({
        'to': str(m['to'].addresses[0].addr_spec) if m['to'] else '',
        'subject': str(m['subject'] or ''),
        'text': text.get_content() if text else '',
        'html': html.get_content() if html else '',
    })
print(json.dumps(out))
`;

function listening(port) {
  return new Promise((ok) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      ok(true);
    });
    s.once('error', () => ok(false));
  });
}

/** Starts aiosmtpd on a free loopback port; resolves once it accepts connections. */
export async function startSmtp() {
  const dir = mkdtempSync(join(tmpdir(), 'samplit-smtp-'));
  const port = await freePort();
  const child = spawn(PYTHON, ['-m', 'aiosmtpd', '-n', '-l', `127.0.0.1:${port}`, '-c', 'aiosmtpd.handlers.Mailbox', join(dir, 'maildir')], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 15_000;
  while (!(await listening(port))) {
    if (child.exitCode !== null) throw new Error(`aiosmtpd exited (${child.exitCode}): apt install python3-aiosmtpd`);
    if (Date.now() > deadline) throw new Error(`aiosmtpd did not listen on ${port} within 15 s`);
    await new Promise((ok) => setTimeout(ok, 50));
  }
  /** Every message received so far, oldest first: { to, subject, text, html }. */
  function messages() {
    const out = spawnSync(PYTHON, ['-c', PARSE, join(dir, 'maildir', 'new')], { encoding: 'utf8', timeout: 30_000 });
    if (out.status !== 0) throw new Error(`parsing the Maildir: ${out.stderr}`);
    return JSON.parse(out.stdout);
  }
  /** Waits (bounded) for the first message that `matches`; it. */
  async function waitFor(matches, timeoutMs = 20_000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const found = messages().find(matches);
      if (found) return found;
      if (Date.now() > until) throw new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(messages().map((m) => [m.to, m.subject]))}`);
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }
  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    dir,
    messages,
    waitFor,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((ok) => child.once('exit', ok));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((ok) => setTimeout(ok, 5_000))]);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The first link of `message`'s text starting with `prefix` (e.g. `${base}/app/reset-password`). */
export function link(message, prefix) {
  const start = message.text.indexOf(prefix);
  if (start < 0) return undefined;
  return message.text.slice(start).split(/\s/)[0];
}
