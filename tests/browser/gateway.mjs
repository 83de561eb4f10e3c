// gateway.mjs: the demo page through the compose file's nginx (started by
// tests/e2e/test_gateway.py with its URL): two pages, spread by least_conn
// over both pods, chat with each other. Exit status 0, or 1 with the reason.
import { T, drive } from "./common.mjs";

const [url] = process.argv.slice(2);
await drive(async (browser) => {
  const pages = [];
  for (const name of ["erin", "frank"]) {
    const page = await (await browser.newContext()).newPage();
    await page.goto(url);
    await page.fill("#name", name);
    await page.click("#joinbtn");
    await page.waitForSelector('#state[data-state="open"]', { timeout: T });
    pages.push(page);
  }
  const pods = await Promise.all(pages.map((p) => p.textContent("#state")));
  if (pods[0] === pods[1]) throw new Error(`both pages on one pod: ${pods[0]}`);
  await pages[0].fill("#text", "through nginx");
  await pages[0].press("#text", "Enter");
  await pages[1].locator(".msg", { hasText: "through nginx" }).locator(".from", { hasText: "erin" })
    .waitFor({ timeout: T });
  await pages[0].locator(".tick.done").first().waitFor({ timeout: T });
});
