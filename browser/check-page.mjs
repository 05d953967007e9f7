// Loads the demo page in headless Chromium (the system's, driven by Playwright), waits for the
// demo's result, saves a screenshot, and checks what the page shows: the three steps of the
// nested demo, each with the peer it ran on, and the result.
//
//     node browser/check-page.mjs PAGE_URL OUT.png [SPKI]
//
// SPKI (base64 of the SHA-256 of a public key) is the key of the authority that signed the
// page's certificate, made by the server at start: Chromium trusts certificates under it for
// this run only (--ignore-certificate-errors-spki-list), and nothing else.
import { chromium } from "playwright-core";

const EXPECTED_RESULT = "result: ([42; 43], 44)";
// Off the (absent) network: no component updates, sync or QUIC probes.
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-dev-shm-usage",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
  "--no-first-run",
];

async function main(url, out, spki) {
  const trust = spki ? [`--ignore-certificate-errors-spki-list=${spki}`] : [];
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [...CHROMIUM_ARGS, ...trust],
  });
  let status, steps, result;
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 700 } });
    await page.goto(url);
    const text = (id) =>
      page.evaluate((id) => (document.getElementById(id) || {}).innerText || "", id);
    // The demo is done when it shows its result, or has failed.
    await page
      .waitForFunction(
        (expected) => {
          const shown = (id) => (document.getElementById(id) || {}).innerText || "";
          return shown("result").includes(expected) || shown("status").startsWith("failed");
        },
        EXPECTED_RESULT,
        { timeout: 20_000 },
      )
      .catch(() => {});
    await page.screenshot({ path: out });
    [status, steps, result] = [await text("status"), await text("steps"), await text("result")];
  } finally {
    await browser.close();
  }

  console.log(`status: ${status}\nsteps:\n${steps}\n${result}\nscreenshot: ${out}`);
  const lines = steps.split("\n").filter((line) => line.trim());
  const ok =
    result.includes(EXPECTED_RESULT) &&
    lines.length === 3 &&
    lines[0].startsWith("server") &&
    lines[1].startsWith("peer-") &&
    lines[2].startsWith("server");
  if (!ok) {
    console.error("the page does not show the demo's three steps and its result");
    process.exit(1);
  }
}

const [url, out, spki] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node browser/check-page.mjs PAGE_URL OUT.png [SPKI]");
  process.exit(2);
}
await main(url, out, spki);
