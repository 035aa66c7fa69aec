// The mailed account flows in a real browser (Chromium via playwright-core) against the
// real control plane configured to send mail to a real SMTP server on loopback
// (aiosmtpd, console/test/smtp.mjs): a visitor signs up, the confirmation arrives, its
// link signs them in with a verified address; they forget their password, the reset mail
// arrives, its page sets a new one, and they sign in with it. The account page and the
// reset page are checked with axe-core and photographed at desktop and phone widths
// (target/screenshots/account-*.png).
//
//   cargo build -p samplit-control-plane --bin samplit && node --test console/test/account.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SCREENSHOTS, accessible, launchBrowser, openPage, startServer } from './harness.mjs';
import { link, startSmtp } from './smtp.mjs';

const PASSWORD = 'correct horse battery';
const NEW_PASSWORD = 'a brand new passphrase';
const DESKTOP = { viewport: { width: 1280, height: 800 } };
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };
const email = `ada-${randomBytes(4).toString('hex')}@example.com`;

let smtp;
let server;
let browser;

before(async () => {
  smtp = await startSmtp();
  server = await startServer((base) => ({
    // Plain http on loopback: the development cookie (no Secure) and public URL.
    SAMPLIT_DEV_INSECURE_COOKIES: 'true',
    SAMPLIT_DEV_ALLOW_LOCAL_DOMAINS: 'true',
    SAMPLIT_PUBLIC_URL: base,
    SAMPLIT_SMTP_URL: smtp.url,
    SAMPLIT_MAIL_FROM: 'Samplit <noreply@samplit.test>',
    SAMPLIT_MAIL_POLL_MS: '100',
  }));
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await server?.stop();
  await smtp?.stop();
});

async function shoot(page, name) {
  await page.screenshot({ path: join(SCREENSHOTS, `account-${name}.png`), fullPage: true });
}

test('sign up by mail, then reset a forgotten password by mail', async () => {
  // 401: the signed-out session probes.
  const { page, check } = await openPage(browser, server.base, DESKTOP, { allowStatus: [401] });
  try {
    await page.goto(`${server.base}/app`);
    await page.getByRole('button', { name: 'New to Samplit? Create an account' }).click();
    await page.getByLabel('Your name').fill('Ada Lovelace');
    await page.getByLabel('Company or team name').fill('Analytical Engines');
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(PASSWORD);
    await page.getByRole('button', { name: 'Create an account' }).click();
    await page.getByRole('heading', { name: 'Check your inbox' }).waitFor();
    assert.match(await page.getByTestId('check-inbox').innerText(), new RegExp(email.replace('.', '\\.')));

    const confirm = await smtp.waitFor((m) => m.to === email && m.subject === 'Confirm your email address');
    const confirmLink = link(confirm, `${server.base}/app/verify-email`);
    assert.ok(confirmLink?.includes('#token='), confirm.text);
    await page.goto(confirmLink);
    await page.getByTestId('link-done').filter({ hasText: 'You are signed in' }).waitFor();
    assert.equal(new URL(page.url()).hash, '', 'the token leaves the address bar');
    await page.getByRole('link', { name: 'Open the console' }).click();
    await page.getByTestId('account-menu').click();
    await page.getByTestId('nav-account').click();
    assert.equal(await page.locator('details.account-menu').getAttribute('open'), null, 'a choice closes the menu');
    await page.getByRole('heading', { name: 'Your account' }).waitFor();
    assert.equal(await page.getByTestId('account-email').innerText(), email);
    assert.equal(await page.getByTestId('email-badge').innerText(), 'Verified');
    await accessible(page, 'account');
    await shoot(page, 'page-desktop');

    await page.getByTestId('account-menu').click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByRole('heading', { name: 'Reset your password' }).waitFor();
    await page.getByLabel('Email').fill(email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await page.getByTestId('link-done').waitFor();

    const reset = await smtp.waitFor((m) => m.to === email && m.subject === 'Reset your Samplit password');
    const resetLink = link(reset, `${server.base}/app/reset-password`);
    assert.ok(resetLink?.includes('#token='), reset.text);

    // The reset page at phone width first (looking does not use the link up).
    const phone = await openPage(browser, server.base, PHONE, { allowStatus: [401] });
    try {
      await phone.page.goto(resetLink);
      await phone.page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
      await accessible(phone.page, 'reset (phone)');
      await shoot(phone.page, 'reset-phone');
      await phone.check();
    } finally {
      await phone.context.close();
    }

    await page.goto(resetLink);
    await page.getByRole('heading', { name: 'Choose a new password' }).waitFor();
    await accessible(page, 'reset');
    await shoot(page, 'reset-desktop');
    await page.getByLabel('New password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Set the new password' }).click();
    await page.getByTestId('link-done').waitFor();
    await smtp.waitFor((m) => m.to === email && m.subject === 'Your password was changed');

    await page.getByRole('link', { name: 'Go to sign in' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill(NEW_PASSWORD);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Get started' }).waitFor();
    await check();
  } finally {
    await page.context().close();
  }

  // The account page at phone width, signed in with the new password.
  const { page: p, check: pcheck, context } = await openPage(browser, server.base, PHONE, { allowStatus: [401] });
  try {
    await p.goto(`${server.base}/app`);
    await p.getByLabel('Email').fill(email);
    await p.getByLabel('Password').fill(NEW_PASSWORD);
    await p.getByRole('button', { name: 'Sign in' }).click();
    await p.getByRole('heading', { name: 'Get started' }).waitFor();
    await p.goto(`${server.base}/app/account`);
    await p.getByRole('heading', { name: 'Your account' }).waitFor();
    await accessible(p, 'account (phone)');
    await shoot(p, 'page-phone');
    await pcheck();
  } finally {
    await context.close();
  }
});
