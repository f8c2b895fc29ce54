// The back office in a real browser (cargo xtask browser-test): Playwright
// drives Debian's Chromium against a running `mooring` (engine on, manual KYC
// review) and the in-repo AP simulator, both started by xtask, which also
// adds the users. The scenarios:
//   1. a reviewer signs in with TOTP (enrolling at first sign-in), opens a
//      customer and sees their photo, rejects their bank account number (the
//      waiting transaction asks for it at the simulator:
//      `pending_customer_info_update`), sees the new one the sender sends,
//      approves both parties, and the waiting transaction reaches
//      `completed` at the simulator;
//   2. a refund asked for by one operator is approved by another, and the
//      transaction reaches `refunded`; its maker finds no approve button;
//   3. a viewer finds no approve button, and is refused (403) when posting
//      one by hand;
//   4. an admin reads the audit trail and the users.
// It takes a screenshot of each page into SCREENSHOTS_DIR.
// Any failed assertion exits non-zero.

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { mkdirSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
const OFFICE = env.BACKOFFICE_URL;
const API = env.MOORING_URL;
const SIM = env.SIM_URL;
const PASSWORD = env.STAFF_PASSWORD;
const SHOTS = env.SCREENSHOTS_DIR;
const CHROMIUM = env.CHROMIUM || "/usr/bin/chromium";
for (const [name, value] of Object.entries({ OFFICE, API, SIM, PASSWORD, SHOTS })) {
  assert.ok(value, `${name} is not set (run this through cargo xtask browser-test)`);
}
mkdirSync(SHOTS, { recursive: true });

const USDC = "stellar:USDC:GBBD47IF6LWK7P7MDEVSCWR7DPUWV3NY3DTQEVFL4NAT4AQH3ZLLFLA5";
const ACCOUNT = "GDJUOFZGW5WYBK4GIETCSSM6MTTIJ4SUMCQITPTLUWMQ6B4UIX2IEX47";
// A 48 × 32 PNG of an identity card's likeness, drawn for this test.
const PHOTO = Buffer.from(
  "iVBORw0KGgoAAAANSUhEUgAAADAAAAAgCAIAAADbtmxLAAAAR0lEQVR42mMQsakYVIhh1EGjDhrWDjqxqocgGnXQqINGHTTqoFEHjTpo1EGjDhrODhptMRJykIaGzYCg0SgbjbLRbD+iHQQAJ0uGDG9osAUAAAAASUVORK5CYII=",
  "base64",
);

// ---- TOTP (RFC 6238), as an authenticator app computes it ----

function base32Decode(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.trim()) {
    value = (value << 5) | alphabet.indexOf(c);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(out);
}

function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const digest = createHmac("sha1", secret).update(counter).digest();
  const offset = digest[digest.length - 1] & 0x0f;
  const binary = digest.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

const secrets = {};
const lastStep = {};
// Each code works once: a second sign-in of one user within 30 s takes the
// next step's code (the server accepts one step either side).
function codeFor(user) {
  let step = Math.floor(Date.now() / 1000 / 30);
  if (lastStep[user] !== undefined && step <= lastStep[user]) step = lastStep[user] + 1;
  lastStep[user] = step;
  return totp(secrets[user], step);
}

// ---- the API and the simulator, as the AP would drive them ----

async function json(method, url, body) {
  const response = await fetch(url, {
    method,
    headers: body ? { "content-type": "application/json" } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  assert.ok(response.ok, `${method} ${url} answered ${response.status}: ${text}`);
  return text ? JSON.parse(text) : null;
}

async function customer(fields, photo) {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.append(k, v);
  if (photo) form.append("photo_id_front", new Blob([photo], { type: "image/png" }), "photo_id_front");
  const response = await fetch(`${API}/customer`, { method: "PUT", body: form });
  const answer = await response.json();
  assert.equal(response.status, 200, JSON.stringify(answer));
  return answer;
}

async function transaction(sender, receiver, amountIn) {
  const created = await json("POST", `${SIM}/_sim/transactions`, {
    amount_expected: { amount: "100", asset: USDC },
    amount_in: { amount: "100", asset: USDC },
    amount_out: { amount: "99", asset: USDC },
    amount_fee: { amount: "1", asset: USDC },
    customers: { sender: { id: sender }, receiver: { id: receiver } },
  });
  await json("POST", `${SIM}/_sim/transactions/${created.id}/receive`,
    amountIn ? { amount_in: { amount: amountIn, asset: USDC } } : undefined);
  return created.id;
}

async function statusAtAp(id) {
  return (await json("GET", `${SIM}/transactions/${id}`)).status;
}

async function waitForStatus(id, want, seconds = 30) {
  const deadline = Date.now() + seconds * 1000;
  let status;
  while (Date.now() < deadline) {
    status = await statusAtAp(id);
    if (status === want) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`transaction ${id} is ${status}, not ${want}, after ${seconds} s`);
}

// ---- the browser ----

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

function path(page) {
  return new URL(page.url()).pathname;
}

async function signIn(browser, user, { shots = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1200, height: 800 } });
  const page = await context.newPage();
  page.on("dialog", (dialog) => dialog.accept());
  await page.goto(`${OFFICE}/signin`);
  if (shots) await shot(page, "signin");
  await page.getByLabel("User name").fill(user);
  await page.getByLabel("Password").fill(PASSWORD);
  await page.getByRole("button", { name: "Sign in" }).click();
  if (path(page) === "/signin/enrol") {
    if (shots) await shot(page, "enrol");
    assert.ok(await page.locator("figure.qr svg").isVisible(), "the QR code is shown");
    secrets[user] = base32Decode(await page.locator("#totp-secret").textContent());
  }
  if (path(page).startsWith("/signin/")) {
    await page.getByLabel("Six-digit code from your authenticator").fill(codeFor(user));
    await page.getByRole("button", { name: "Continue" }).click();
  }
  assert.equal(path(page), "/", `${user} is signed in`);
  await assert.doesNotReject(page.getByRole("heading", { name: "Dashboard" }).waitFor());
  return page;
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
try {
  // The data: a sender, a receiver with a photo, a payment waiting for their
  // review, and a payment short of its amount (refused, to be refunded).
  const sender = await customer({
    account: ACCOUNT, memo: "1", memo_type: "id", type: "sep31-sender",
    first_name: "John", last_name: "Doe", email_address: "john@example.com",
  });
  const receiver = await customer({
    account: ACCOUNT, memo: "2", memo_type: "id", type: "sep31-receiver",
    first_name: "Maria", last_name: "Silva", email_address: "maria@example.com",
    bank_account_number: "0001234567", bank_account_type: "checking", bank_number: "341",
  }, PHOTO);
  assert.equal(receiver.status, "PROCESSING", "manual review: waiting for a person");
  const waiting = await transaction(sender.id, receiver.id);
  const short = await transaction(sender.id, receiver.id, "90");
  await waitForStatus(short, "error");
  assert.notEqual(await statusAtAp(waiting), "completed");

  // 1. A reviewer signs in with TOTP, sees the photo, approves both parties.
  const rita = await signIn(browser, "rita", { shots: true });
  await shot(rita, "dashboard");
  await rita.getByRole("link", { name: "Customers" }).click();
  await shot(rita, "customers");
  await rita.getByLabel("Customer id").fill(receiver.id);
  await rita.getByRole("button", { name: "Find" }).click();
  assert.equal(path(rita), `/customers/${receiver.id}`);
  const photo = rita.locator("img.kyc-image");
  await photo.waitFor();
  const width = await photo.evaluate((img) => img.complete && img.naturalWidth);
  assert.equal(width, 48, "the photo is shown");
  assert.ok(await rita.getByText("Silva").isVisible(), "a reviewer sees the values");
  await shot(rita, "customer");
  // One field rejected: the AP is asked for it, the sender sends another.
  await rita.getByLabel("Reason for rejecting bank_account_number")
    .fill("This account is closed: please send an open one");
  await rita.getByRole("row", { name: /bank_account_number/ })
    .getByRole("button", { name: "Reject field" }).click();
  assert.equal(path(rita), `/customers/${receiver.id}`);
  await rita.getByText("NEEDS_INFO").first().waitFor();
  assert.ok(await rita.getByText("This account is closed").isVisible(), "the reason is shown");
  await shot(rita, "customer-field");
  await waitForStatus(waiting, "pending_customer_info_update");
  const asked = await json("GET", `${API}/customer?id=${receiver.id}`);
  assert.equal(asked.status, "NEEDS_INFO");
  assert.equal(asked.provided_fields.bank_account_number.status, "REJECTED");
  await json("PUT", `${API}/customer`, { id: receiver.id, bank_account_number: "0007654321" });
  await rita.reload();
  await rita.getByText("0007654321").waitFor();
  await rita.getByRole("button", { name: "Approve" }).click();
  await rita.getByText("ACCEPTED").first().waitFor();
  await rita.goto(`${OFFICE}/customers/${sender.id}`);
  await rita.getByRole("button", { name: "Approve" }).click();
  await rita.getByText("ACCEPTED").first().waitFor();
  await waitForStatus(waiting, "completed");
  await rita.goto(`${OFFICE}/payouts`);
  await shot(rita, "payouts");

  // 2. A refund: asked for by olga, approved by otto.
  const olga = await signIn(browser, "olga");
  await olga.goto(`${OFFICE}/payouts/${short}`);
  await olga.getByLabel(/Stellar transaction hash/).fill("ab".repeat(32));
  await olga.getByRole("button", { name: "Ask for a refund" }).click();
  assert.equal(path(olga), `/payouts/${short}`);
  await shot(olga, "payout");
  await olga.goto(`${OFFICE}/requests`);
  assert.equal(await olga.getByRole("button", { name: "Approve" }).count(), 0,
    "the maker finds no approve button");
  assert.equal(await olga.getByRole("button", { name: "Withdraw" }).count(), 1);
  const otto = await signIn(browser, "otto");
  await otto.goto(`${OFFICE}/requests`);
  await shot(otto, "requests");
  await otto.getByRole("button", { name: "Approve" }).click();
  await waitForStatus(short, "refunded");
  await otto.goto(`${OFFICE}/payouts/${short}`);
  // The table under the "Requests" heading (the timeline and the audit
  // trail come before it).
  const ended = await otto.locator("h2:text-is('Requests') + table").innerText();
  assert.match(ended, /approved/, "the request is approved");
  assert.match(ended, /refund recorded/, `the request says how it ended: ${ended}`);

  // 3. A viewer finds no approve button, and is refused when posting one.
  const vera = await signIn(browser, "vera");
  await vera.goto(`${OFFICE}/customers/${receiver.id}`);
  assert.equal(await vera.getByRole("button", { name: "Approve" }).count(), 0);
  assert.equal(await vera.getByText("Silva").count(), 0, "a viewer sees no value");
  const csrf = await vera.locator("input[name=csrf]").first().inputValue();
  const posted = await vera.request.post(`${OFFICE}/customers/${receiver.id}/approve`, {
    form: { csrf },
    maxRedirects: 0,
  });
  assert.equal(posted.status(), 403);

  // 4. An admin reads the audit trail (the viewer's refusal is in it).
  const ada = await signIn(browser, "ada");
  await ada.goto(`${OFFICE}/audit?actor=vera`);
  const refusals = await ada.locator("tbody td", { hasText: "staff.access_refused" }).count();
  assert.ok(refusals >= 1, "the viewer's refused approval is in the audit trail");
  await ada.goto(`${OFFICE}/audit`);
  await shot(ada, "audit");
  await ada.goto(`${OFFICE}/users`);
  await shot(ada, "users");
  console.log("browser test: every scenario passed");
} finally {
  await browser.close();
}
