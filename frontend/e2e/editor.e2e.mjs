// End to end in real headless Chromium (Debian's /usr/bin/chromium) against the running stack:
// log in, open an exercise, break the code and see the error marker, fix it, submit a correct
// solution (every test passes, mastery rises), submit a wrong one (failures listed). Prints the
// figures and saves screenshots under .run/e2e/.
//
//   node frontend/e2e/editor.e2e.mjs [base-url]
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..");
const dist = join(root, "frontend", "dist");
const shots = join(root, ".run", "e2e");
const base = process.env.LEARNFLOW_URL ?? "http://127.0.0.1:8000";
const CORRECT = "def sum_to(n):\n    return n * (n + 1) // 2\n";
const WRONG = "def sum_to(n):\n    return n\n";

mkdirSync(shots, { recursive: true });

async function replaceCode(page, code) {
  await page.locator(".monaco-editor .view-lines").click();
  await page.keyboard.press("ControlOrMeta+A");
  await page.keyboard.press("Delete");
  // Line by line, as a student types: the editor indents after "def …:" on its own.
  const lines = code.trimEnd().split("\n");
  for (const [index, line] of lines.entries()) {
    await page.keyboard.insertText(line.trimStart());
    if (index < lines.length - 1) await page.keyboard.press("Enter");
  }
}

async function diagnosticsCount(page) {
  return page.evaluate(() => window.learnflowTimings?.diagnostics.length ?? 0);
}

async function latestDiagnostics(page) {
  return page.evaluate(() => {
    const all = window.learnflowTimings?.diagnostics ?? [];
    return all[all.length - 1] ?? null;
  });
}

async function waitForDiagnostics(page, after, predicate) {
  await page.waitForFunction(
    ([count, source]) => {
      const all = window.learnflowTimings?.diagnostics ?? [];
      return all.length > count && new Function("e", `return (${source})(e)`)(all[all.length - 1]);
    },
    [after, predicate.toString()],
    { timeout: 10_000 },
  );
  return latestDiagnostics(page);
}

const hasError = (e) => e.markers.some((m) => m.severity === 8);
const noError = (e) => !e.markers.some((m) => m.severity === 8);

function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
    ],
  });
}

async function pMastered(page, component) {
  const text = await page.getByTestId(`p-${component}`).textContent();
  return Number.parseFloat(text);
}

test("a student edits, sees diagnostics, submits and watches mastery move", { timeout: 180_000 }, async () => {
  const browser = await launch();
  const figures = {};
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    const loaded = new Map();
    page.on("response", (response) => {
      const path = new URL(response.url()).pathname;
      if (/\.(js|wasm)$/.test(path)) loaded.set(path, response.headers()["content-type"] ?? "");
    });
    page.on("pageerror", (error) => console.error("page error:", error));

    await page.goto(base + "/");
    await page.getByRole("heading", { name: "Development login" }).waitFor();
    assert.match(await page.getByRole("note").innerText(), /development login/i);
    const student = `e2e-${Date.now().toString(36)}`;
    await page.getByLabel("Student id").fill(student);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("heading", { name: "Exercises" }).waitFor();
    await page.screenshot({ path: join(shots, "exercises-1280.png"), fullPage: true });

    await page.getByRole("link", { name: "Sum from 1 to n" }).first().click();
    const opened = await page.evaluate(() => performance.now());
    await page.waitForFunction(() => (window.learnflowTimings?.diagnostics.length ?? 0) > 0, null, {
      timeout: 15_000,
    });
    // From navigation start: this page load is the login page's, so measure a fresh load too.
    await page.reload();
    await page.waitForFunction(() => (window.learnflowTimings?.diagnostics.length ?? 0) > 0, null, {
      timeout: 15_000,
    });
    figures.firstDiagnosticsMs = await page.evaluate(() => window.learnflowTimings.diagnostics[0].at);
    assert.ok(opened > 0);
    const before = await pMastered(page, "loops");
    // Before any attempt a component shows the model's prior, labelled not started, not 0 %.
    const loopsRow = page.locator('.mastery li[data-component="loops"]');
    assert.equal((await loopsRow.locator(".badge").innerText()).trim(), "not started");
    assert.ok(before > 0, `loops starts at the prior, not 0 %: ${before}`);
    assert.match(await page.getByTestId("model-version").innerText(), /model version \d+/);

    // A valid program: no error markers.
    let seen = await diagnosticsCount(page);
    await replaceCode(page, CORRECT);
    await waitForDiagnostics(page, seen, noError);

    // One keystroke that breaks the syntax: delete the colon after "def sum_to(n)".
    await page.keyboard.press("ControlOrMeta+Home");
    await page.keyboard.press("End");
    seen = await diagnosticsCount(page);
    const pressed = await page.evaluate(() => performance.now());
    await page.keyboard.press("Backspace");
    const broken = await waitForDiagnostics(page, seen, hasError);
    figures.keystrokeToMarkerMs = broken.at - pressed;
    await page.locator(".squiggly-error").first().waitFor({ timeout: 5_000 });
    await page.screenshot({ path: join(shots, "syntax-error-1280.png") });

    // Fix it: the marker goes away.
    seen = await diagnosticsCount(page);
    await page.keyboard.type(":");
    await waitForDiagnostics(page, seen, noError);
    assert.equal(await page.locator(".squiggly-error").count(), 0);

    // Submit the correct solution: every test passes, mastery of its component rises.
    await page.getByRole("button", { name: "Submit" }).click();
    await page.getByRole("heading", { name: "All tests passed" }).waitFor({ timeout: 30_000 });
    const results = page.locator(".tests li");
    const count = await results.count();
    assert.ok(count >= 1);
    for (let i = 0; i < count; i++) {
      assert.equal(await results.nth(i).getAttribute("data-passed"), "true");
    }
    await page.waitForFunction(
      (old) => Number.parseFloat(document.querySelector('[data-testid="p-loops"]').textContent) > old,
      before,
      { timeout: 10_000 },
    );
    const after = await pMastered(page, "loops");
    assert.ok(after > before, `mastery of loops rose: ${before} -> ${after}`);
    figures.submitToMasteryMs = await page.evaluate(() => window.learnflowTimings.submits[0].ms);
    await page.screenshot({ path: join(shots, "passed-1280.png"), fullPage: true });

    // A wrong solution, submitted with Ctrl+Enter: failures are listed.
    await replaceCode(page, WRONG);
    await page.keyboard.press("ControlOrMeta+Enter");
    await page.getByRole("heading", { name: /of \d+ tests passed/ }).waitFor({ timeout: 30_000 });
    const failed = page.locator('.tests li[data-passed="false"]');
    assert.ok((await failed.count()) >= 1);
    assert.match(await failed.first().textContent(), /expected/);
    await page.getByRole("heading", { name: "Your attempts" }).waitFor();
    await page.screenshot({ path: join(shots, "failed-1280.png"), fullPage: true });

    // The same page on a narrow screen.
    await page.setViewportSize({ width: 400, height: 800 });
    await page.getByRole("button", { name: "Submit" }).waitFor();
    await page.screenshot({ path: join(shots, "failed-400.png"), fullPage: true });

    // What the page loaded, gzipped.
    let js = 0;
    let wasm = 0;
    for (const [path, type] of loaded) {
      const file = join(dist, path);
      if (!existsSync(file)) continue;
      const size = gzipSync(readFileSync(file)).length;
      if (path.endsWith(".wasm")) {
        wasm += size;
        assert.equal(type, "application/wasm", `${path} served as ${type}`);
      } else js += size;
    }
    figures.jsGzipKiB = js / 1024;
    figures.wasmGzipKiB = wasm / 1024;
    assert.ok(wasm > 0, "the Ruff WASM module was loaded");
  } finally {
    await browser.close();
    console.log("\nweb editor figures (headless Chromium, this machine):");
    console.log(`  page load to first diagnostics: ${figures.firstDiagnosticsMs?.toFixed(0)} ms (target <= 2500)`);
    console.log(`  keystroke to error marker:      ${figures.keystrokeToMarkerMs?.toFixed(0)} ms (target <= 200)`);
    console.log(`  submit to mastery update:       ${figures.submitToMasteryMs?.toFixed(0)} ms`);
    console.log(`  JS loaded (gzip):               ${figures.jsGzipKiB?.toFixed(0)} KiB`);
    console.log(`  WASM loaded (gzip):             ${figures.wasmGzipKiB?.toFixed(0)} KiB`);
    console.log(`  screenshots:                    ${shots}`);
  }
});

test("a cold load transfers little, a reload almost nothing", { timeout: 120_000 }, async () => {
  const browser = await launch();
  const transferred = { cold: 0, reload: 0 };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    // Every request of the page and its workers (the Ruff WASM loads in one), as sent over
    // the wire: compressed bodies and headers; what came from the cache counts nothing.
    let bytes = 0;
    const pending = [];
    context.on("requestfinished", (request) => {
      pending.push(
        request.sizes().then((sizes) => {
          if (!request.response()) return;
          bytes += sizes.responseBodySize + sizes.responseHeadersSize;
        }),
      );
    });
    const settled = async () => {
      await Promise.all(pending.splice(0));
      return bytes;
    };
    const editorReady = () =>
      page.waitForFunction(() => (window.learnflowTimings?.diagnostics.length ?? 0) > 0, null, {
        timeout: 30_000,
      });

    await page.goto(base + "/");
    await page.getByLabel("Student id").fill(`e2e-${Date.now().toString(36)}`);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("link", { name: "Sum from 1 to n" }).first().click();
    await editorReady();
    await page.waitForLoadState("networkidle");
    transferred.cold = await settled();

    bytes = 0;
    await page.reload();
    await editorReady();
    await page.waitForLoadState("networkidle");
    transferred.reload = await settled();

    const asset = (await page.evaluate(() => performance.getEntriesByType("resource")))
      .map((entry) => entry.name)
      .find((name) => /\/assets\/index-.*\.js$/.test(name));
    const head = await fetch(asset, { headers: { "Accept-Encoding": "br, gzip" } });
    assert.equal(head.headers.get("cache-control"), "public, max-age=31536000, immutable");
    assert.equal(head.headers.get("content-encoding"), "br");
    const index = await fetch(base + "/");
    assert.equal(index.headers.get("cache-control"), "no-cache");
    assert.ok(transferred.cold < 5_000_000, `cold load transferred ${transferred.cold} bytes`);
    assert.ok(transferred.reload < 100_000, `reload transferred ${transferred.reload} bytes`);
  } finally {
    await browser.close();
    console.log("\nweb editor transfer (headless Chromium, login to first diagnostics):");
    console.log(`  cold load: ${(transferred.cold / 1e6).toFixed(2)} MB (target <= 5 MB)`);
    console.log(`  reload:    ${(transferred.reload / 1e3).toFixed(1)} KB (target <= 100 KB)`);
  }
});
