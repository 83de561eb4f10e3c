// gateway.mjs: the demo page through the compose file's nginx (started by
// tests/e2e/test_gateway.py with its URL): two pages on the two pods chat
// with each other. Exit status 0, or 1 with the reason.
//
// least_conn counts each page's short requests (the page, its stats) and a
// socket being replaced too, so a second page can tie and land on the first
// one's pod; test_gateway.py checks the spreading itself. Here pages are
// opened until one is on the other pod (each page there adds a connection
// to the first pod's count, so that takes one or two).
import { T, drive } from "./common.mjs";

const [url] = process.argv.slice(2);

async function open(browser, name) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(url);
  await page.waitForSelector('#state[data-state="open"]', { timeout: T });
  await page.fill("#name", name); // read when a message is sent: no new join
  return page;
}

await drive(async (browser) => {
  const first = await open(browser, "erin");
  const firstPod = await first.textContent("#state");
  let other = null;
  for (let i = 0; i < 6 && !other; i++) {
    const page = await open(browser, "frank");
    if ((await page.textContent("#state")) !== firstPod) other = page;
  }
  if (!other) throw new Error(`six more pages all on the first page's pod: ${firstPod}`);
  await first.fill("#text", "through nginx");
  await first.press("#text", "Enter");
  await other.locator(".msg", { hasText: "through nginx" }).locator(".from", { hasText: "erin" })
    .waitFor({ timeout: T });
  await first.locator(".tick.done").first().waitFor({ timeout: T });
});
