// common.mjs: what the browser drivers share: Debian's chromium with the
// flags this machine needs, and one way to end (exit status 0, or 1 with
// the reason on stderr).
import { chromium } from "playwright-core";

export const T = 15000; // milliseconds any one expectation may take

export function launch() {
  return chromium.launch({
    executablePath: "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
}

// Runs body(browser) and exits: 0 when it returned, 1 when it threw.
export async function drive(body) {
  const browser = await launch();
  let code = 0;
  try {
    await body(browser);
  } catch (e) {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    code = 1;
  }
  await browser.close();
  process.exit(code);
}
