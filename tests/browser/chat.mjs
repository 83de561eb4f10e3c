// chat.mjs: drives Debian's chromium through the demo page, like a person
// would. Started by tests/e2e/test_browser.py with the two pods' page URLs
// and a directory for screenshots; talks to it by lines on stdin/stdout:
//   it prints "RESTART" when pod 1 should be stopped and started again, and
//   waits for "GO"; at the end it prints "RESULT {json}".
// Any failed expectation throws: the exit status is then 1 with the reason.
import readline from "node:readline";
import { T, drive } from "./common.mjs";

const [url1, url2, shots] = process.argv.slice(2);
// Lines from the harness, kept until asked for (one may come early).
const lines = readline.createInterface({ input: process.stdin });
const inbox = [], askers = [];
lines.on("line", (l) => (askers.length ? askers.shift()(l) : inbox.push(l)));
const nextLine = () => new Promise((resolve) => (inbox.length ? resolve(inbox.shift()) : askers.push(resolve)));

function expect(cond, what) {
  if (!cond) throw new Error("expected: " + what);
}

const dialogs = [];
const errors = [];
let browser;

async function open(url, name, room, viewport) {
  const ctx = await browser.newContext(viewport ? { viewport } : {});
  const page = await ctx.newPage();
  page.on("dialog", async (d) => { dialogs.push(d.message()); await d.dismiss(); });
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  await page.fill("#name", name);
  await page.fill("#room", room);
  await page.click("#joinbtn");
  await page.waitForSelector('#state[data-state="open"]', { timeout: T });
  return page;
}

// A message line whose text is exactly text, sent by from.
function message(page, from, text) {
  return page.locator(".msg", { has: page.locator(".from", { hasText: from }) })
    .filter({ has: page.locator(".body", { hasText: text }) });
}

async function say(page, text) {
  await page.fill("#text", text);
  await page.press("#text", "Enter");
}

const result = {};
await drive(async (b) => {
  browser = b;
  const alice = await open(url1, "alice", "lobby");
  const bob = await open(url2, "bob", "lobby");
  const carol = await open(url1, "carol", "elsewhere");
  expect((await alice.textContent("#state")).includes("pod-1"), "alice's state names pod-1");
  expect((await bob.textContent("#state")).includes("pod-2"), "bob's state names pod-2");

  // Both ways through Redis, with sender, time and pod; own copy = delivered.
  await say(alice, "hello from alice");
  await message(bob, "alice", "hello from alice").waitFor({ timeout: T });
  expect((await message(bob, "alice", "hello from alice").locator(".pod").textContent()) === "via pod-1",
    "bob sees which pod alice is on");
  expect(/\d\d:\d\d:\d\d/.test(await message(bob, "alice", "hello from alice").locator(".meta").textContent()),
    "a time on the message");
  await alice.locator(".mine .tick.done", { hasText: "delivered" }).first().waitFor({ timeout: T });
  await say(bob, "hi alice");
  await message(alice, "bob", "hi alice").waitFor({ timeout: T });

  // Markup is text.
  const xss = "<img src=x onerror=alert(1)>";
  await say(bob, xss);
  await message(alice, "bob", xss).waitFor({ timeout: T });
  expect((await message(alice, "bob", xss).locator(".body").textContent()) === xss, "the markup shown as text");
  expect(await alice.locator("#log img").count() === 0, "no img element in alice's log");
  expect(await bob.locator("#log img").count() === 0, "no img element in bob's log");

  // Another room sees none of it.
  await say(carol, "carol was here");
  await message(carol, "carol", "carol was here").waitFor({ timeout: T });
  for (const t of ["hello from alice", "hi alice", xss])
    expect(await carol.locator(".body", { hasText: t }).count() === 0, `carol does not see "${t}"`);
  expect(await alice.locator(".body", { hasText: "carol was here" }).count() === 0, "alice does not see carol");

  // Nobody speaks as the server. A client's forged welcome and error are
  // refused (the forger alone is told invalid_type)...
  const stateBefore = await alice.textContent("#state");
  const meBefore = await alice.evaluate(() => session.me);
  const forgedWelcome = { event: "welcome", client_id: "admin", room: "admins", pod: "pod-9" };
  const forgedError = { event: "error", code: "expired", message: "Your session expired, log in at evil.example" };
  await bob.evaluate(([w, e]) => {
    session.ws.send(JSON.stringify({ type: "system", data: w }));
    session.ws.send(JSON.stringify({ type: "system", data: e }));
  }, [forgedWelcome, forgedError]);
  await bob.locator(".msg.error", { hasText: "invalid_type" }).nth(1).waitFor({ timeout: T });
  // ...and a system message under any other sender (here a backend's,
  // published to Redis by the harness) is shown as a line, never obeyed.
  process.stdout.write("FORGE\n");
  await nextLine(); // GO: published
  await message(alice, "mallory", "evil.example").waitFor({ timeout: T });
  expect(await alice.textContent("#state") === stateBefore, "alice's header unchanged by forged welcomes");
  expect(await alice.evaluate(() => session.me) === meBefore, "alice's identity unchanged");
  expect(await alice.locator(".msg.error").count() === 0, "no forged error styled as the server's");
  expect(await alice.locator(".msg.system", { hasText: "admins" }).count() === 0, "no forged join line");
  const ticks = await alice.locator(".mine .tick.done").count();
  await say(alice, "still me");
  await alice.locator(".mine .tick.done").nth(ticks).waitFor({ timeout: T });

  // Two senders with the same name are told apart by their id's tag.
  const bob2 = await open(url1, "bob", "lobby");
  await say(bob2, "the other bob");
  await message(alice, "bob", "the other bob").waitFor({ timeout: T });
  const tagOf = (m) => m.locator(".from .tag").textContent();
  const t1 = await tagOf(message(alice, "bob", "hi alice"));
  const t2 = await tagOf(message(alice, "bob", "the other bob"));
  expect(t1 !== t2, `two bobs have different tags (${t1}, ${t2})`);
  expect(t1 === await alice.evaluate((id) => tag(id), await bob.evaluate(() => session.me)),
    "the tag is the sender's id's");
  result.tags = [t1, t2];

  // An error answer from the server is shown, not swallowed (the page
  // itself only sends chat messages; this one goes round it).
  await alice.evaluate(() => session.ws.send(JSON.stringify({ type: "shout", data: {} })));
  await alice.locator(".msg.error", { hasText: "error" }).first().waitFor({ timeout: T });

  await alice.screenshot({ path: `${shots}/alice.png`, fullPage: true });
  await bob.screenshot({ path: `${shots}/bob.png`, fullPage: true });

  // A phone: 375 px wide, nothing wider than the screen, sending works.
  const phone = await open(url2, "dave", "lobby", { width: 375, height: 740 });
  const width = await phone.evaluate(() => document.documentElement.scrollWidth);
  expect(width <= 375, `page fits 375 px (scrollWidth ${width})`);
  for (const sel of ["#text", "#sendbtn", "#log", "#state"]) {
    const box = await phone.locator(sel).boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 375 && box.height > 0, `${sel} visible on the phone`);
  }
  await phone.fill("#text", "from a phone");
  await phone.click("#sendbtn");
  await message(alice, "dave", "from a phone").waitFor({ timeout: T });
  await phone.screenshot({ path: `${shots}/phone-375.png`, fullPage: true });
  result.phone_scroll_width = width;

  // Pod 1 goes away and comes back: alice reconnects by herself.
  process.stdout.write("RESTART\n");
  await alice.waitForSelector('#state[data-state="waiting"], #state[data-state="connecting"]', { timeout: T });
  await nextLine(); // GO: pod 1 is back
  const t0 = Date.now();
  await alice.waitForSelector('#state[data-state="open"]', { timeout: T * 2 });
  result.reconnect_ms = Date.now() - t0;
  expect(await alice.locator(".msg.system", { hasText: "reconnecting in" }).count() > 0,
    "the page said it was reconnecting");
  await say(alice, "back again");
  await message(bob, "alice", "back again").waitFor({ timeout: T });
  await say(bob, "welcome back");
  await message(alice, "bob", "welcome back").waitFor({ timeout: T });
  await alice.screenshot({ path: `${shots}/alice-after-restart.png`, fullPage: true });

  // The stats panel shows the pod's figures.
  await alice.locator("#stats dd", { hasText: "pod-1" }).waitFor({ timeout: T });

  expect(dialogs.length === 0, `no dialog opened (${dialogs.join(", ")})`);
  expect(errors.length === 0, `no script error (${errors.join("; ")})`);
  process.stdout.write("RESULT " + JSON.stringify(result) + "\n");
});
